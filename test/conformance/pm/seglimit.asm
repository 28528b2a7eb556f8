; Segment limit checks: expand-up/expand-down, byte/page-granular, 16/32-bit (B bit)
; data and stack segments (#GP(0) / #SS(0)).
; QEMU (TCG, 7.2) does not check data-segment limits at all, so this program's expected
; output is the SDM's, recorded from Bochs 2.7 in seglimit.expected. QEMU does not fault
; on accesses through a null data-segment selector either ("null es read/write").
%include "pmlib.inc"
%define LDT_AT 0x21000
main:
    SETDESC 0x30, 0x20000, 0xFFF, 0x92, 4      ; RW data, byte limit 0xFFF
    SETDESC 0x38, 0x20000, 0xFFFF, 0x90, 4     ; read-only data
    SETDESC 0x40, 0, 0xFFFFF, 0x98, 0xC        ; execute-only code
    SETDESC 0x48, 0, 0xFFFFF, 0xF2, 0xC        ; DPL 3 data
    SETDESC 0x50, 0x20000, 0xFFFF, 0x12, 4     ; not present data
    SETDESC 0x58, 0x20000, 0xFFF, 0x96, 4      ; expand-down, B=1
    SETDESC 0x60, 0x20000, 0xFFF, 0x96, 0      ; expand-down, B=0
    SETDESC 0x68, 0x20000, 0, 0x92, 0xC        ; G=1 limit 0 -> 0xFFF
    SETDESC 0x70, 0, 0xFFFFF, 0x9E, 0xC        ; conforming readable code DPL0
    SETDESC 0x78, LDT_AT, 0x17, 0x82, 0        ; LDT
    SETDESC 0x80, 0x00080010, 0x1234, 0xEC, 0  ; (call gate, DPL3: fields arbitrary)
    SETDESC 0x88, 0, 0xFFFFF, 0xB2, 0xC        ; DPL 1 data
    SETDESC 0x90, 0x20000, 0x7FFFF, 0x92, 0x8  ; G=1 limit 0x7FFFF -> 0x7FFFFFFF
    SETDESC 0x98, 0x30000, 0x67, 0x8B, 0       ; busy 386 TSS
    SETDESC 0xA0, 0, 0xFFFFF, 0xFA, 0xC        ; DPL3 code, not readable
    SETDESC 0xA8, 0, 0xFFFFF, 0xFE, 0xC        ; DPL3 conforming readable code... (exec/read)
    SETDESC 0xB0, 0x20000, 0xFFFF, 0x94, 4     ; read-only expand-down (limit 0xFFFF)
    SETDESC 0xB8, 0x30000, 0x2B, 0x81, 0       ; available 286 TSS
    DESCAT LDT_AT + 8, 0x20100, 0xFF, 0x92, 4  ; LDT[1] data, base 0x20100
    DESCAT LDT_AT + 16, 0x20000, 0xFF, 0xF2, 4 ; LDT[2] DPL3 data
    mov ax, 0x78
    lldt ax

    PLN "-- limits"
    mov dword [0x20000], 0x11223344
    mov dword [0x20FFC], 0x55667788
    mov dword [0x20100], 0xA5A5A5A5
    MEMT "bytelim dword@FFC", 0x30, mov eax, [es:0xFFC]
    MEMT "bytelim dword@FFD", 0x30, mov eax, [es:0xFFD]
    MEMT "bytelim byte@FFF", 0x30, mov al, [es:0xFFF]
    MEMT "bytelim byte@1000", 0x30, mov al, [es:0x1000]
    MEMT "bytelim word@FFF", 0x30, mov ax, [es:0xFFF]
    MEMT "bytelim big offset", 0x30, mov al, [es:0xFFFFFFFF]
    MEMT "null es read", 0, mov eax, [es:0]
    MEMT "null es write", 3, mov [es:0], eax
    MEMT "readonly write", 0x38, mov [es:0], eax
    MEMT "readonly read", 0x38, mov eax, [es:0]
    MEMT "conforming code write", 0x70, mov [es:0x30000], eax
    MEMT "expdown32 @FFF", 0x58, mov al, [es:0xFFF]
    MEMT "expdown32 @1000", 0x58, mov al, [es:0x1000]
    MEMT "expdown32 dword@FFE", 0x58, mov eax, [es:0xFFE]
    MEMT "expdown32 dword@FFFFFFFC", 0x58, mov eax, [es:0xFFFFFFFC]
    MEMT "expdown32 dword@FFFFFFFD", 0x58, mov eax, [es:0xFFFFFFFD]
    MEMT "expdown16 @1000", 0x60, mov al, [es:0x1000]
    MEMT "expdown16 dword@FFFC", 0x60, mov eax, [es:0xFFFC]
    MEMT "expdown16 dword@FFFD", 0x60, mov eax, [es:0xFFFD]
    MEMT "expdown16 @10000", 0x60, mov al, [es:0x10000]
    MEMT "expdown ro limFFFF @FFFF", 0xB0, mov al, [es:0xFFFF]
    MEMT "expdown ro limFFFF @10000", 0xB0, mov al, [es:0x10000]
    MEMT "expdown ro write @10000", 0xB0, mov [es:0x10000], al
    MEMT "gran lim0 dword@FFC", 0x68, mov eax, [es:0xFFC]
    MEMT "gran lim0 dword@FFD", 0x68, mov eax, [es:0xFFD]
    MEMT "gran lim0 @1000", 0x68, mov al, [es:0x1000]
    MEMT "gran 7FFFF @7FFFFFFF", 0x90, mov al, [es:0x7FFFFFFF]
    MEMT "gran 7FFFF @80000000", 0x90, mov al, [es:0x80000000]
    MEMT "gran 7FFFF dword@7FFFFFFD", 0x90, mov eax, [es:0x7FFFFFFD]
    MEMT "ldt[1] read", 0x0C, mov eax, [es:0]
    P32 "ldt[1] eax", eax
    MEMT "ldt[1] @100", 0x0C, mov al, [es:0x100]
    MEMT "push via ss limit", 0x30, mov ebx, ebx
    ; stack-segment limit faults -> #SS(0)
    PSTR "ss limit push "
    TRY .ssdone
    mov ax, 0x30
    mov ss, ax
    mov esp, 0x1000
    push eax
    mov [ss:0x20], esp
    push eax
    mov [ss:0x24], esp
    mov eax, [ss:0xFFE]        ; faults #SS(0) with the handler frame pushed below 0xFF8
    PLN "nofault"
    mov dword [rec_eip], 0
.ssdone:
    mov ax, KDATA
    mov ss, ax
    mov esp, [rec_esp]
    mov eax, [0x20020]
    P32 "esp after push", eax
    PSTR "ss limit esp=0 push "
    TRY .ss2
    mov ax, 0x30
    mov ss, ax
    mov esp, 0x800
    mov ebp, 0
    mov eax, [ebp+0x1000]      ; EBP-based -> SS -> #SS(0)
    PLN "nofault"
    mov dword [rec_eip], 0
.ss2:
    mov ax, KDATA
    mov ss, ax
    mov esp, [rec_esp]
    ; expand-down stacks at CPL 3 so that #SS is delivered on the ring-0 stack
    SETDESC 0xC0, 0x20000, 0xFFF, 0xF6, 4      ; expand-down, B=1: 0x1000..0xFFFFFFFF
    SETDESC 0xC8, 0x20000, 0xFFF, 0xF6, 0      ; expand-down, B=0: 0x1000..0xFFFF
    mov dword [0x20030], 0
    PSTR "expdown32 ss push "
    RING3 ed32
    P32 "expdown32 esp", [0x20030]
    PSTR "expdown16 ss read "
    RING3 ed16
    P32 "expdown16 val", [0x20030]
    ret
ed32:
    mov ax, 0xC3
    mov ss, ax
    mov esp, 0x1008
    push eax
    mov [0x20030], esp
    push eax
    mov [0x20030], esp
    push eax                    ; 0xFFC: below the lower bound -> #SS(0)
    mov [0x20030], esp
    mov ax, UDATA
    mov ss, ax
    PLN "nofault"
    int 0x7F
ed16:
    mov ax, 0xCB
    mov ss, ax
    mov esp, 0xFFFC
    mov dword [0x2FFF8], 0x600DF00D
    mov eax, [ss:0xFFF8]
    mov [0x20030], eax
    mov eax, [ss:0xFFFD]        ; crosses 0xFFFF -> #SS(0)
    mov ax, UDATA
    mov ss, ax
    PLN "nofault"
    int 0x7F
%include "pmend.inc"
