; Exceptions: #UD, #DE, #BR, #OF, INT3, #GP/#NP error codes and faulting/trapping EIP,
; privileged instructions at CPL 3, double fault (#NP on the #GP gate -> #DF(0)),
; single-step traps (TF) including the MOV SS / POP SS one-instruction shadow.
%include "pmlib.inc"
main:
    T "ud2", ud2
    xor edx, edx
    mov eax, 1
    xor ecx, ecx
    T "div eax/0", div ecx
    mov eax, 0x80000000
    mov edx, 0xFFFFFFFF
    mov ecx, -1
    T "idiv overflow", idiv ecx
    mov ax, 0x100
    mov cl, 1
    T "div ax/1 byte overflow", div cl
    mov dword [0x20000], 10
    mov dword [0x20004], 20
    mov eax, 15
    T "bound in", bound eax, [0x20000]
    mov eax, 21
    T "bound above", bound eax, [0x20000]
    mov eax, 9
    T "bound below", bound eax, [0x20000]
    mov ax, 9
    T "bound16 below", bound ax, [0x20000]
    PSTR "into OF=1 "
    TRY .i1
    mov al, 0x7F
    add al, 1
    into
    PLN "nofault"
.i1:
    PSTR "into OF=0 "
    TRY .i2
    mov al, 1
    add al, 1
    into
    mov dword [rec_eip], 0
    PLN "ok"
.i2:
    T "int3", int3
    T "int 3", int 3
    T "int 4", int 4
    ; INT1/ICEBP (F1) is left out: QEMU 7.2 raises #UD for it with -cpu pentium2, the SDM and Bochs #DB
    T "lock nop", db 0xF0, 0x90
    T "lock add reg", db 0xF0, 0x01, 0xC0
    mov ax, 0x10
    T "ltr data sel", ltr ax
    mov ax, TSSSEL
    T "ltr busy tss", ltr ax
    T "mov cr1", db 0x0F, 0x22, 0xC8
    T "lldt gdt data", lldt ax
    PLN "-- CPL 3 privileged"
    R3T "hlt", hlt
    R3T "mov cr0", mov cr0, eax
    R3T "mov eax cr3", mov eax, cr3
    R3T "lgdt", lgdt [0x20000]
    R3T "lidt", lidt [0x20000]
    R3T "ltr", ltr ax
    R3T "invlpg", invlpg [0]
    R3T "wbinvd", wbinvd
    R3T "mov dr0", mov dr0, eax
    R3T "clts", clts
    R3T "sgdt ok", sgdt [0x20010]
    R3T "smsw ok", smsw ax
    R3T "int 0x20 dpl0", int 0x20
    PLN "-- not-present gate"
    mov byte [IDT_BASE + 0x21*8 + 5], 0x0E   ; P=0
    T "int 0x21 np", int 0x21
    PLN "-- double fault"
    mov byte [IDT_BASE + 13*8 + 5], 0x0E     ; #GP gate not present
    mov ax, 0x1000
    T "gp with np gate", mov ds, ax
    mov byte [IDT_BASE + 13*8 + 5], 0x8E
    PLN "-- single step"
    IDTGATE 1, db_handler, 0x8E
    mov dword [db_count], 0
    pushfd
    or dword [esp], 0x100
    popfd
    nop
    mov ax, KDATA
    mov ss, ax
    nop
    push ss
    pop ss
    nop
    inc eax
    pushfd
    and dword [esp], ~0x100
    popfd
    nop
    P32 "db count", [db_count]
    ret
db_count: dd 0
db_handler:
    push ebp
    mov ebp, esp
    inc dword [db_count]
    P32 "DB eip", [ebp+4]
    pop ebp
    iretd
%include "pmend.inc"
