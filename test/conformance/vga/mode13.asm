; Mode 13h (320x200, 256 colours, chain-4): programs the registers itself, loads a palette
; (entry i = i & 63, i >> 2, 63 - (i & 63)), draws pixel (x, y) = (x + 3y) & 255, then fills line 199
; with 16-bit stores of 0x1234 and line 198 with 32-bit stores of 0x44332211.
  mov si, mode13
  call setmode
  mov dx, 0x3c8
  xor al, al
  out dx, al
  inc dx
  xor bx, bx
.pal:
  mov al, bl
  and al, 63
  out dx, al
  mov al, bl
  shr al, 2
  out dx, al
  mov al, bl
  and al, 63
  mov ah, 63
  sub ah, al
  mov al, ah
  out dx, al
  inc bx
  cmp bx, 256
  jb .pal
  mov ax, 0xa000
  mov es, ax
  xor di, di
  xor dx, dx
.row:
  mov ax, dx
  add ax, dx
  add ax, dx
  mov cx, 320
.col:
  stosb
  inc al
  loop .col
  inc dx
  cmp dx, 198
  jb .row
  mov eax, 0x44332211
  mov cx, 80
  rep stosd
  mov ax, 0x1234
  mov cx, 160
  rep stosw
  hlt
