; CPUID and EFLAGS.ID/AC: only what x86vm promises is printed (family 6 and the feature bits FPU VME(off) PSE
; TSC MSR PAE(off) CX8 APIC SEP PGE CMOV; QEMU runs -cpu pentium2,pae=off,vme=off). Model, stepping, brand
; and other feature bits (MMX, FXSR, MTRR, PAT, ...) differ between QEMU's model and x86vm: masked.
%include "conf.inc"
        xor     eax, eax
        cpuid
        cmp     eax, 1
        setae   al
        movzx   eax, al
        PRINT   "leaf0 max>=1 "
        PHEX8   eax
        NL
        mov     eax, 1
        cpuid
        mov     ecx, eax
        shr     ecx, 8
        and     ecx, 0xF
        PRINT   "family "
        PHEX8   ecx
        NL
        ; FPU VME PSE TSC MSR PAE CX8 SEP PGE CMOV. APIC (bit 9) is left out: x86vm reports it only when the
        ; machine has a local APIC (the PC platform adds one); this BIOS-only machine has none, QEMU's has.
        and     edx, 0x0000A97B
        PRINT   "features "
        PHEX32  edx
        NL
        ; ID flag toggles (CPUID supported), AC flag toggles (486+)
        pushfd
        pop     eax
        mov     ebx, eax
        xor     eax, 0x00240000
        push    eax
        popfd
        pushfd
        pop     eax
        xor     eax, ebx
        and     eax, 0x00240000
        PRINT   "id-ac-toggle "
        PHEX32  eax
        NL
        push    ebx
        popfd
        EXIT_OK
%include "conf_end.inc"
