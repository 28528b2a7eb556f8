; x87 basics: FLD/FST of m32/m64/m80/m16int/m32int/m64int and FBLD/FBSTP round trips, FSQRT,
; FCOMI/FUCOMI flags, FXAM classes, FSTSW after inexact.
%include "pmlib.inc"
%define B 0x20000
main:
    mov eax, cr0
    and eax, ~0x0C                 ; EM=0 TS=0
    or eax, 0x22                   ; MP NE
    mov cr0, eax
    fninit
    fld tword [v80]
    fstp tword [B]
    mov esi, B
    mov ecx, 3
    call dumpd
    fld tword [v80]
    fst qword [B]
    fst dword [B+8]
    fistp dword [B+12]
    mov esi, B
    mov ecx, 4
    call dumpd
    fild qword [i64]
    fistp qword [B]
    fbld tword [bcd]
    fbstp tword [B+8]
    mov esi, B
    mov ecx, 5
    call dumpd
    fld qword [two]
    fsqrt
    fstp qword [B]
    mov esi, B
    mov ecx, 2
    call dumpd
    fld1
    fld qword [two]
    fcomi st0, st1
    PFLAGS "fcomi 2>1"
    fucomip st0, st1
    PFLAGS "fucomip"
    fstp st0
    fnstsw ax
    P16 "sw", ax
    fld tword [v80]
    fxam
    fnstsw ax
    and ax, 0x4700
    P16 "fxam normal", ax
    fstp st0
    fldz
    fxam
    fnstsw ax
    and ax, 0x4700
    P16 "fxam zero", ax
    fstp st0
    fxam
    fnstsw ax
    and ax, 0x4700
    P16 "fxam empty", ax
    ; Not checked here: a masked stack underflow (QEMU 7.2 sets neither IE nor SF and writes no
    ; QNaN indefinite; Bochs and the SDM do: SW=0x4161) and the reserved high words of the
    ; 32-bit FSTENV image (QEMU writes 0, Bochs 0xFFFF).
    ret
align 16
v80: dq 0xC90FDAA22168C235
     dw 0x4000
i64: dq -1234567890123
bcd: dq 0x0000001234567890
     dw 0x8000
two: dq 2.0
%include "pmend.inc"
