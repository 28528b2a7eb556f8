; Privilege transfers: ring 0 -> 3 by IRET and RETF (data segments nulled), call gates
; with parameters (32-bit and 16-bit), INT n from ring 3 through interrupt and trap gates
; (stack switch, pushed frame, IF), gate DPL checks (#GP(vector*8+2)), IOPL and the I/O
; permission bitmap for IN/OUT/CLI/STI/POPF.
%include "pmlib.inc"
%define SAVE 0x20100
main:
    SETDESC 0x30, 0x10000, 0xFFFF, 0x9B, 0      ; 16-bit ring-0 code, base = image
    SETDESC 0x38, 0x10000, 0xFFFF, 0xFB, 4      ; 32-bit ring-3 code, base = image
    SETGATE gdt, 0x60/8, cg32_target, KCODE, 0xEC, 2   ; 32-bit call gate, DPL 3, 2 params
    SETGATE gdt, 0x68/8, cg16_target - 0x10000, 0x30, 0xE4, 2 ; 16-bit call gate, 2 params
    SETGATE gdt, 0x70/8, cg32_target, KCODE, 0x8C, 2   ; DPL 0 call gate
    IDTGATE 0x40, int_handler, 0xEE              ; int gate, DPL 3
    IDTGATE 0x41, int_handler, 0xEF              ; trap gate, DPL 3
    IDTGATE 0x42, int_handler, 0x8E              ; int gate, DPL 0

    PLN "-- iret to ring 3, DS stays KDATA"
    call .go1
    jmp .a1
.go1:
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov ax, UDATA
    mov fs, ax
    mov [r3_esp], esp
    push dword UDATA
    push dword STK3 - 16
    push dword 0x3002           ; IOPL 3
    push dword UCODE
    push dword .r3a
    iretd
.r3a:
    mov ebx, ds
    mov ecx, es
    mov edx, fs
    mov ax, UDATA
    mov ds, ax
    P32 "ds", ebx
    P32 "es", ecx
    P32 "fs", edx
    mov eax, ss
    P32 "ss", eax
    P32 "esp", esp
    pushfd
    pop eax
    P32 "efl", eax
    int 0x7F
.a1:
    PLN "-- retf to ring 3"
    call .go2
    jmp .a2
.go2:
    mov [r3_esp], esp
    push dword UDATA
    push dword STK3 - 32
    push dword UCODE
    push dword .r3b
    retf
.r3b:
    mov ax, UDATA
    mov ds, ax
    mov eax, cs
    P32 "cs", eax
    P32 "esp", esp
    pushfd
    pop eax
    P32 "efl", eax
    int 0x7F

.a2:
    PLN "-- 32-bit call gate with 2 params"
    RING3 r3_cg32
    P32 "back esp", [SAVE+0x40]
    P32 "back eax", [SAVE+0x44]
    PLN "-- 16-bit call gate with 2 params"
    call .go3
    jmp .c16
.go3:
    mov ax, UDATA
    mov ds, ax
    mov [r3_esp], esp
    push dword UDATA
    push dword STK3
    push dword 2
    push dword 0x3B
    push dword r3_cg16 - 0x10000
    iretd
.c16:
    mov esi, SAVE
    mov ecx, 6
    call dumpd
    PLN "-- DPL 0 call gate from ring 3"
    R3T "call gate dpl0", call 0x73:0
    PLN "-- INT n from ring 3"
    RING3 r3_int, 0x202
    PLN "-- IO at CPL 3 IOPL 0"
    R3T "in 80", in al, 0x80
    R3T "out 80", out 0x80, al
    R3T "out 81", out 0x81, al
    R3T "out E8", out 0xE8, al
    R3T "out word EA", out 0xEA, ax
    R3T "out word EB", out 0xEB, ax
    R3T "out dword E9", out 0xE9, eax
    R3T "in word F4", in ax, 0xF4
    mov edx, 0x3F8
    R3T "in 3F8 beyond bitmap", in al, dx
    R3T "cli", cli
    R3T "sti", sti
    RING3 r3_popf
    PLN "-- IO at CPL 3 IOPL 3"
    RING3 r3_iopl3, 0x3002
    ret

r3_popf:
    pushfd
    or dword [esp], 0x3200      ; try to set IOPL=3 and IF
    popfd
    pushfd
    pop eax
    P32 "popf iopl0", eax
    int 0x7F
r3_iopl3:
    cli
    sti
    cli
    out 0x81, al
    mov dx, 0x2FF
    in al, dx
    pushfd
    and dword [esp], ~0x3000    ; IOPL 3 lets CPL 3 clear IOPL? no: only CPL 0 can
    popfd
    pushfd
    pop eax
    P32 "popf iopl3", eax
    PLN "iopl3 ok"
    int 0x7F

r3_cg32:
    mov eax, 0x1234
    push dword 0x11111111
    push dword 0x22222222
    call 0x63:0
    mov [SAVE+0x40], esp
    mov [SAVE+0x44], eax
    int 0x7F
cg32_target:
    mov ax, ss
    P16 "ss", ax
    P32 "esp", esp
    mov esi, esp
    mov ecx, 6
    call dumpd
    mov eax, cs
    P32 "cs", eax
    mov eax, 0xC0DE
    retf 8

BITS 32
r3_cg16:                         ; runs in selector 0x38 (base 0x10000): offsets are small
    push dword 0x33334444
    call 0x6B:0
    mov [dword SAVE+0x14], esp
    int 0x7F
BITS 16
cg16_target:
    mov eax, [esp]
    mov [dword SAVE], eax
    mov eax, [esp+4]
    mov [dword SAVE+4], eax
    mov eax, [esp+8]
    mov [dword SAVE+8], eax
    mov eax, [esp+12]
    mov [dword SAVE+12], eax
    mov [dword SAVE+16], esp
    retf 4
BITS 32

r3_int:
    int 0x40
    int 0x41
    int 0x42
    int 0x7F
int_handler:
    pushfd
    push eax
    push ds
    push ebp
    mov ebp, esp
    mov ax, KDATA
    mov ds, ax
    mov eax, [ebp+12]
    and eax, 0x37300
    P32 "handler efl", eax
    P32 "frame eip", [ebp+16]
    P32 "frame cs", [ebp+20]
    P32 "frame efl", [ebp+24]
    P32 "frame esp", [ebp+28]
    P32 "frame ss", [ebp+32]
    lea eax, [ebp+16]
    P32 "handler esp", eax
    pop ebp
    pop ds
    pop eax
    popfd
    iretd
%include "pmend.inc"
