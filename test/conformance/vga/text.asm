; 80x25 text (mode 3) without a BIOS: programs the registers, loads the EGA palette, loads the 8x16 font
; at `font` into plane 2 (sequential addressing, plane 2 only, A0000 map), restores odd/even addressing,
; writes "VGA text OK" in yellow on blue on row 0 and all 256 characters in grey from row 2, and puts the
; cursor at row 24, column 10.
  mov si, mode03
  call setmode
  call egapalette
  mov dx, 0x3c4
  mov ax, 0x0402          ; map mask: plane 2
  out dx, ax
  mov ax, 0x0704          ; sequential addressing
  out dx, ax
  mov dx, 0x3ce
  mov ax, 0x0204          ; read plane 2
  out dx, ax
  mov ax, 0x0005          ; no odd/even
  out dx, ax
  mov ax, 0x0406          ; A0000 64K, text
  out dx, ax
  mov ax, 0xa000
  mov es, ax
  mov si, font
  xor di, di
  mov bx, 256
.glyph:
  mov cx, 16
  rep movsb
  add di, 16              ; 32-byte glyph slots
  dec bx
  jnz .glyph
  mov dx, 0x3c4
  mov ax, 0x0302
  out dx, ax
  mov ax, 0x0204
  out dx, ax
  mov dx, 0x3ce
  mov ax, 0x0004
  out dx, ax
  mov ax, 0x1005
  out dx, ax
  mov ax, 0x0e06
  out dx, ax
  mov ax, 0xb800
  mov es, ax
  xor di, di
  mov si, message
  mov ah, 0x1e
.msg:
  lodsb
  test al, al
  jz .chars
  stosw
  jmp .msg
.chars:
  mov di, 2 * 80 * 2
  xor al, al
  mov ah, 0x07
  mov cx, 256
.all:
  stosw
  inc al
  loop .all
  mov dx, 0x3d4
  mov bx, 24 * 80 + 10
  mov al, 0x0e
  mov ah, bh
  out dx, ax
  mov al, 0x0f
  mov ah, bl
  out dx, ax
  hlt
message: db 'VGA text OK', 0
