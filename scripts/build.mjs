// Builds the CLI bundle (dist/x86vm.mjs) with esbuild. Run by `npm run build` and by `prepare`.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

await build({
  entryPoints: ['node/main.ts'],
  outfile: 'dist/x86vm.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
chmodSync('dist/x86vm.mjs', 0o755);
