; Hardware task switches (32-bit TSSs): CALL and JMP to a TSS descriptor and through a task
; gate, IRET with NT=1 back through the back link, busy bits before/after each switch (read from
; the GDT), the state saved in the old TSS (general registers, EFLAGS with NT cleared on IRET,
; EIP, segment selectors), LDTR and CR3 loaded from the new TSS (two page directories that map
; linear 0x400000 differently), CR0.TS set by every switch, an interrupt (INT n) and exceptions
; (#DE without and #GP with an error code) through task gates in the IDT, #TS for a TSS limit
; below 0x67 and for a bad DS selector in the new TSS (raised after the commit point, so in the
; new task: TR, busy bits and the pushed CS:EIP are the new task's), #GP for JMP/CALL to a busy
; TSS, #TS for IRET with NT=1 to a task that is not busy, #GP for a task gate above CPL.
; CR3 is loaded from the TSS only when paging is on (QEMU and Bochs both do so), hence paging.
; QEMU 7.2 deviations avoided here (Bochs and the SDM agree with each other):
;   - STC right before a far CALL that switches tasks: QEMU saves EFLAGS with CF=0 in the old
;     TSS (its lazy flags are not synced); the flags are set with POPFD instead.
;   - #TS after the commit point: QEMU pushes the EIP of the old task's JMP, the SDM the new
;     task's first EIP ("generates the exception prior to beginning execution of the new
;     task"); that EIP is not printed here.
; Built with -DSDM the program uses STC and prints the #TS frame's EIP; that build is checked
; against task-sdm.expected, recorded from Bochs 2.7 and checked by hand against the SDM.
%include "pmlib.inc"
%define TSSB 0x30000
%define TSSC 0x30100
%define TSSD 0x30200
%define LDTB 0x30400
%define PD1 0x100000
%define PD2 0x101000
%define STKB 0x70000
%define STKC 0x6C000
%define STKD 0x68000
%define MARK 0x20100

%define SEL_B 0x30
%define SEL_C 0x38
%define SEL_LDT 0x40
%define SEL_GATE 0x48
%define SEL_SHORT 0x50
%define SEL_D 0x58
%define SEL_GATE3 0x60

%macro BUSY 0 ; print the type bytes of the TSS descriptors A (main) and B
    P8 "  typeA", [gdt + TSSSEL + 5]
    P8 "  typeB", [gdt + SEL_B + 5]
%endmacro

main:
    ; descriptors
    SETDESC SEL_B, TSSB, 0x67, 0x89, 0
    SETDESC SEL_C, TSSC, 0x67, 0x89, 0
    SETDESC SEL_LDT, LDTB, 0x17, 0x82, 0
    SETGATE gdt, SEL_GATE/8, 0, SEL_B, 0x85, 0       ; task gate DPL 0 -> B
    SETGATE gdt, SEL_GATE3/8, 0, SEL_B, 0xE5, 0      ; task gate DPL 3 -> B
    SETDESC SEL_SHORT, TSSD, 0x60, 0x89, 0           ; limit 0x60 < 0x67
    SETDESC SEL_D, TSSD, 0x67, 0x89, 0
    DESCAT LDTB + 8, MARK, 0xFF, 0x92, 4             ; LDT[1]: data, base MARK
    mov dword [MARK], 0xCAFEBABE
    mov dword [0x400000 + MARK], 0x12345678
    ; paging: PD1 identity (4 MiB user pages), PD2 identity except linear 4M..8M -> physical 0
    mov edi, PD1
    xor eax, eax
    mov ecx, 0x800
    rep stosd
    mov ecx, 0
.pd: mov eax, ecx
    shl eax, 22
    or eax, 0x87
    mov [PD1 + ecx*4], eax
    mov [PD2 + ecx*4], eax
    inc ecx
    cmp ecx, 8
    jb .pd
    mov dword [PD2 + 4], 0x87
    mov eax, cr4
    or eax, 0x10
    mov cr4, eax
    mov eax, PD1
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov dword [tss + 0x1C], PD1        ; CR3 is not saved on a switch; A's field must be right

    PLN "-- call to TSS"
    BUSY
    mov edi, TSSB
    mov eax, tb_call
    mov ebx, STKB
    mov ecx, PD2
    call init_tss
    mov word [TSSB + 0x60], SEL_LDT
    mov word [TSSB + 0x58], 0x0C       ; FS = LDT[1]
    mov dword [TSSB + 0x28], 0xB0000001
    mov dword [TSSB + 0x2C], 0xB0000002
    mov dword [TSSB + 0x30], 0xB0000003
    mov dword [TSSB + 0x34], 0xB0000004
    mov dword [TSSB + 0x3C], 0xB0000006
    mov dword [TSSB + 0x40], 0xB0000007
    mov dword [TSSB + 0x44], 0xB0000008
    mov ax, UDATA
    mov gs, ax
    push ebp
    mov eax, 0xA0000001
    mov ecx, 0xA0000002
    mov edx, 0xA0000003
    mov ebx, 0xA0000004
    mov ebp, 0xA0000006
    mov esi, 0xA0000007
    mov edi, 0xA0000008
%ifdef SDM
    stc
%else
    push dword 0x8D7                     ; OF SF ZF AF PF CF (see the header about STC)
    popfd
%endif
    call SEL_B:0
after_call:
    pushfd
    push eax
    mov eax, gs
    P32 "back gs", eax
    pop eax
    call flat
    P32 "back eax", eax
    P32 "back ecx", ecx
    P32 "back edx", edx
    P32 "back ebx", ebx
    P32 "back ebp", ebp
    P32 "back esi", esi
    P32 "back edi", edi
    pop eax
    P32 "back efl", eax
    pop ebp
    BUSY
    call pstate
    PLN "  saved in A:"
    mov esi, tss + 0x20
    mov ecx, 17
    call dumpd
    PLN "  saved in B:"
    P32 "  B link", [TSSB]
    mov esi, TSSB + 0x20
    mov ecx, 17
    call dumpd
    clts

    PLN "-- call through a task gate"
    mov edi, TSSB
    mov eax, tb_gate
    mov ebx, STKB
    mov ecx, PD1
    call init_tss
    BUSY
    call SEL_GATE:0x12345678
    BUSY
    call pstate
    clts
    PSTR "gate DPL0 from CPL3 "
    RING3 r3_gate
    PSTR "gate DPL3 from CPL3 "
    mov edi, TSSB
    mov eax, tb_gate3
    mov ebx, STKB
    mov ecx, PD1
    call init_tss
    RING3 r3_gate3
    BUSY
    clts

    PLN "-- jmp to TSS"
    mov edi, TSSB
    mov eax, tb_jmp
    mov ebx, STKB
    mov ecx, PD1
    call init_tss
    mov eax, 0x55555555
    mov esi, 0x66666666
    jmp SEL_B:0
after_jmp:
    P32 "back eax", eax
    P32 "back esi", esi
    BUSY
    call pstate
    P32 "  B eip", [TSSB + 0x20]
    P32 "  B link", [TSSB]
    clts

    PLN "-- int n through a task gate"
    SETGATE IDT_BASE, 0x50, 0, SEL_C, 0x85, 0
    mov edi, TSSC
    mov eax, tc_int
    mov ebx, STKC
    mov ecx, PD1
    call init_tss
    mov eax, 0x77777777
    int 0x50
    P32 "back eax", eax
    call pstate
    P8 "  typeC", [gdt + SEL_C + 5]
    P32 "  C link", [TSSC]
    P32 "  C efl", [TSSC + 0x24]
    clts

    PLN "-- #DE through a task gate"
    mov eax, [IDT_BASE]
    mov edx, [IDT_BASE + 4]
    push eax
    push edx
    SETGATE IDT_BASE, 0, 0, SEL_C, 0x85, 0
    mov edi, TSSC
    mov eax, tc_de
    mov ebx, STKC
    mov ecx, PD1
    call init_tss
    mov eax, 1
    xor edx, edx
    xor ecx, ecx
div_insn:
    div ecx                              ; 2 bytes; the handler task skips it
    P32 "after div eax", eax
    call pstate
    pop edx
    pop eax
    mov [IDT_BASE], eax
    mov [IDT_BASE + 4], edx
    clts

    PLN "-- #GP(sel) through a task gate"
    mov eax, [IDT_BASE + 13*8]
    mov edx, [IDT_BASE + 13*8 + 4]
    push eax
    push edx
    SETGATE IDT_BASE, 13, 0, SEL_C, 0x85, 0
    mov edi, TSSC
    mov eax, tc_gp
    mov ebx, STKC
    mov ecx, PD1
    call init_tss
    mov dword [gp_resume], gp_back
    mov ax, 0x1F8                        ; beyond the GDT limit
gp_insn:
    mov ds, ax
    PLN "nofault"
gp_back:
    call flat
    call pstate
    pop edx
    pop eax
    mov [IDT_BASE + 13*8], eax
    mov [IDT_BASE + 13*8 + 4], edx
    clts

    PLN "-- faults"
    T "jmp tss limit 0x60", jmp SEL_SHORT:0
    T "call tss limit 0x60", call SEL_SHORT:0
    T "jmp busy tss (self)", jmp TSSSEL:0
    T "call busy tss (self)", call TSSSEL:0
    mov byte [gdt + SEL_B + 5], 0x8B
    T "jmp busy tss B", jmp SEL_B:0
    T "call gate to busy tss", call SEL_GATE:0
    mov byte [gdt + SEL_B + 5], 0x89
    mov dword [tss], SEL_B               ; back link to a task that is not busy
    PSTR "iret NT=1 to free tss "
    TRY iret_back
    pushfd
    or dword [esp], 0x4000
    popfd
    iretd
    PLN "nofault"
iret_back:
    mov dword [tss], 0
    pushfd
    pop eax
    and eax, 0x4000
    P32 "  NT after", eax
    BUSY
    call pstate

    PLN "-- #TS after the commit point (bad DS in the new TSS)"
    mov edi, TSSD
    mov eax, td_entry
    mov ebx, STKD
    mov ecx, PD2
    call init_tss
    mov word [TSSD + 0x54], 0x1F8        ; DS beyond the GDT limit
    mov word [TSSD + 0x60], SEL_LDT
    ; QEMU 7.2 pushes the EIP of the old task's JMP here (it unwinds to the faulting
    ; instruction); the SDM and Bochs push the new task's first EIP. The frame's EIP is not
    ; printed here; taskcommit.asm checks it against a Bochs-recorded golden file.
    IDTGATE 10, ts_commit, 0x8E
    mov [rec_esp], esp
    jmp SEL_D:0
    PLN "nofault"
ts_back:
    call pstate
    P8 "  typeA", [gdt + TSSSEL + 5]
    P8 "  typeD", [gdt + SEL_D + 5]
    ; back to task A: TR := A (LTR needs an available TSS), page directory 1
    mov byte [gdt + SEL_D + 5], 0x89
    mov ax, TSSSEL
    ltr ax
    P8 "  typeA", [gdt + TSSSEL + 5]
    mov eax, PD1
    mov cr3, eax
    xor eax, eax
    lldt ax
    clts
    ret

; print TR, LDTR, CR3, CR0.TS, EFLAGS.NT
pstate:
    push eax
    str ax
    P16 "  tr", ax
    sldt ax
    P16 "  ldtr", ax
    mov eax, cr3
    P32 "  cr3", eax
    mov eax, cr0
    and eax, 8
    P32 "  ts", eax
    pushfd
    pop eax
    and eax, 0x4000
    P32 "  nt", eax
    pop eax
    ret

; edi = TSS, eax = EIP, ebx = ESP (and ESP0), ecx = CR3; flat ring-0 segments, EFLAGS=2,
; no LDT, no I/O bitmap, other registers 0
init_tss:
    push eax
    push ecx
    push edi
    xor eax, eax
    mov ecx, 0x68/4
    rep stosd
    pop edi
    pop ecx
    pop eax
    mov [edi + 0x1C], ecx
    mov [edi + 0x20], eax
    mov dword [edi + 0x24], 2
    mov [edi + 0x38], ebx
    mov [edi + 0x04], ebx
    mov dword [edi + 0x08], KDATA
    mov dword [edi + 0x48], KDATA
    mov dword [edi + 0x4C], KCODE
    mov dword [edi + 0x50], KDATA
    mov dword [edi + 0x54], KDATA
    mov dword [edi + 0x58], KDATA
    mov dword [edi + 0x5C], KDATA
    mov word [edi + 0x66], 0x68
    ret

; ---------------------------------------------------------------- task B entries
tb_call:
    pushfd
    push eax
    PLN "  in B"
    pop eax
    P32 "  B eax", eax
    P32 "  B ecx", ecx
    P32 "  B edx", edx
    P32 "  B ebx", ebx
    P32 "  B esp", esp
    P32 "  B ebp", ebp
    P32 "  B esi", esi
    P32 "  B edi", edi
    pop eax
    P32 "  B efl", eax
    mov eax, fs
    P32 "  B fs", eax
    P32 "  B fs:0", [fs:0]
    P32 "  B [400000+mark]", [0x400000 + MARK]
    call pstate
    BUSY
    P32 "  B link", [TSSB]
    mov eax, 0xC0000001
    mov ecx, 0xC0000002
    mov edx, 0xC0000003
    mov ebx, 0xC0000004
    mov ebp, 0xC0000006
    mov esi, 0xC0000007
    mov edi, 0xC0000008
    iretd
b_after_iret:
    PLN "B resumed?"
    jmp exit_fail

tb_gate:
    PLN "  in B (gate)"
    call pstate
    BUSY
    P32 "  B link", [TSSB]
    iretd
    jmp exit_fail

tb_gate3:
    PLN "  in B (gate3)"
    call pstate
    P32 "  B link", [TSSB]
    P32 "  A cs", [tss + 0x4C]
    P32 "  A ss", [tss + 0x50]
    P32 "  A esp", [tss + 0x38]
    iretd                                ; back to ring 3 in task A
    jmp exit_fail

r3_gate:
    call SEL_GATE:0
    int 0x7F
r3_gate3:
    call (SEL_GATE3 | 3):0
    mov ax, UDATA
    mov ds, ax
    mov es, ax
    PLN "ok"
    int 0x7F

tb_jmp:
    PLN "  in B (jmp)"
    call pstate
    BUSY
    P32 "  B link", [TSSB]
    P32 "  A eip", [tss + 0x20]
    P32 "  A efl", [tss + 0x24]
    P32 "  A eax", [tss + 0x28]
    P32 "  A esi", [tss + 0x40]
    mov eax, 0x99999999
    jmp TSSSEL:0
    jmp exit_fail

; ---------------------------------------------------------------- task C entries
tc_int:
    PLN "  in C (int 0x50)"
    call pstate
    P32 "  C esp", esp
    P32 "  C eax", eax
    P32 "  C link", [TSSC]
    P8 "  typeA", [gdt + TSSSEL + 5]
    P8 "  typeC", [gdt + SEL_C + 5]
    P32 "  A eip", [tss + 0x20]
    P32 "  A eax", [tss + 0x28]
    iretd
    jmp exit_fail

tc_de:
    PLN "  in C (#DE)"
    call pstate
    P32 "  C esp", esp
    P32 "  C link", [TSSC]
    mov eax, [tss + 0x20]
    sub eax, div_insn
    P32 "  A eip - div_insn", eax
    add dword [tss + 0x20], 2
    mov dword [tss + 0x28], 0xDE
    iretd
    jmp exit_fail

tc_gp:
    PLN "  in C (#GP)"
    call pstate
    P32 "  C esp", esp
    pop eax
    P32 "  error code", eax
    mov eax, [tss + 0x20]
    sub eax, gp_insn
    P32 "  A eip - gp_insn", eax
    mov eax, [gp_resume]
    mov [tss + 0x20], eax
    iretd
    jmp exit_fail
gp_resume: dd 0
kdata_sel: dw KDATA

td_entry:
    PLN "task D ran?"
    jmp exit_fail
ts_commit:                               ; #TS in task D: error code, CS, EFLAGS, frame ESP
%ifdef SDM
    mov eax, [esp+4]
    sub eax, td_entry
    mov ds, [cs:kdata_sel]
    P32 "  #TS eip - td_entry", eax
%endif
    mov ebx, [esp]
    mov ecx, [esp+8]
    mov edx, [esp+12]
    and edx, ~0x10000                    ; RF: Bochs sets it in fault frames, QEMU does not
    mov ebp, esp
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    P32 "  #TS e", ebx
    P32 "  #TS cs", ecx
    P32 "  #TS efl", edx
    P32 "  #TS frame esp", ebp
    mov ax, KDATA
    mov ss, ax
    mov esp, [rec_esp]
    call flat
    IDTGATE 10, isr_stubs + 10*16, 0x8E
    jmp ts_back
    jmp exit_fail
%include "pmend.inc"
