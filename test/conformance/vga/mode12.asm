; Mode 12h (640x480, 16 colours, planar): programs the registers, loads the EGA palette, fills with
; write mode 2: the 8 pixels of byte b on line y get colour (b + (y >> 4)) & 15; inverts bytes 64-79
; of lines 0-15 with the XOR function over the latches (set/reset 15); then draws the diagonal x = y in
; colour 15 one pixel at a time through the bit mask (write mode 0, set/reset, latches).
  mov si, mode12
  call setmode
  call egapalette
  mov ax, 0xa000
  mov es, ax
  mov dx, 0x3ce
  mov ax, 0x0205          ; write mode 2
  out dx, ax
  mov ax, 0xff08          ; bit mask: all
  out dx, ax
  xor di, di
  xor bp, bp
.row:
  mov ax, bp
  shr ax, 4
  mov cx, 80
.col:
  stosb
  inc al
  loop .col
  inc bp
  cmp bp, 480
  jb .row
  mov dx, 0x3ce
  mov ax, 0x0005          ; write mode 0
  out dx, ax
  mov ax, 0x0f00          ; set/reset colour 15
  out dx, ax
  mov ax, 0x0f01          ; set/reset on all planes
  out dx, ax
  mov ax, 0x1803          ; function XOR
  out dx, ax
  xor bp, bp
.xrow:
  mov ax, bp
  mov bx, 80
  mul bx
  add ax, 64
  mov di, ax
  mov cx, 16
.xcol:
  mov al, [es:di]         ; load the latches
  mov [es:di], al
  inc di
  loop .xcol
  inc bp
  cmp bp, 16
  jb .xrow
  mov dx, 0x3ce
  mov ax, 0x0003          ; function: replace
  out dx, ax
  xor bp, bp
.diag:
  mov ax, bp
  mov bx, 80
  mul bx
  mov di, ax
  mov ax, bp
  shr ax, 3
  add di, ax
  mov cx, bp
  and cl, 7
  mov ah, 0x80
  shr ah, cl
  mov al, 8               ; bit mask = this pixel
  mov dx, 0x3ce
  out dx, ax
  mov al, [es:di]
  mov [es:di], al
  inc bp
  cmp bp, 480
  jb .diag
  hlt
