; Shared routines for the VGA guest tests (real mode, DS = 0, no BIOS): a mode set from a register table
; and loading the 64-colour EGA palette into the DAC. test/vga.test.ts appends this file and the tables.

; setmode: programs the VGA from the table at DS:SI:
;   misc (1), sequencer 0-4 (5), CRTC 0-24 (25), attribute 0-20 (21), graphics 0-8 (9)
setmode:
  cld
  mov dx, 0x3c2
  lodsb
  out dx, al
  mov dx, 0x3c4
  mov ax, 0x0100          ; synchronous reset while the clocking changes
  out dx, ax
  inc si                  ; the table's SR0
  mov bl, 1
  mov cx, 4
.seq:
  mov al, bl
  mov ah, [si]
  out dx, ax
  inc si
  inc bl
  loop .seq
  mov ax, 0x0300          ; end of reset
  out dx, ax
  mov dx, 0x3d4           ; CR11 bit 7 write-protects CR0-7: clear it first
  mov al, 0x11
  out dx, al
  inc dx
  in al, dx
  and al, 0x7f
  out dx, al
  dec dx
  xor bl, bl
  mov cx, 25
.crtc:
  mov al, bl
  mov ah, [si]
  out dx, ax
  inc si
  inc bl
  loop .crtc
  mov dx, 0x3da           ; reset the attribute flip-flop
  in al, dx
  mov dx, 0x3c0
  xor bl, bl
  mov cx, 21
.attr:
  mov al, bl
  out dx, al
  lodsb
  out dx, al
  inc bl
  loop .attr
  mov dx, 0x3ce
  xor bl, bl
  mov cx, 9
.gc:
  mov al, bl
  mov ah, [si]
  out dx, ax
  inc si
  inc bl
  loop .gc
  mov dx, 0x3c0           ; palette address source: display on
  mov al, 0x20
  out dx, al
  ret

; egapalette: DAC entries 0-63 = rgbRGB colours (high bits 1/3, low bits 2/3 intensity)
egapalette:
  mov dx, 0x3c8
  xor al, al
  out dx, al
  inc dx
  xor bx, bx
.entry:
  mov cl, 2               ; red: bits 2 and 5
  call .component
  mov cl, 1               ; green: bits 1 and 4
  call .component
  mov cl, 0               ; blue: bits 0 and 3
  call .component
  inc bx
  cmp bx, 64
  jb .entry
  ret
.component:
  xor al, al
  mov ah, bl
  shr ah, cl
  test ah, 1
  jz .nolow
  add al, 42
.nolow:
  test ah, 8
  jz .nohigh
  add al, 21
.nohigh:
  out dx, al
  ret
