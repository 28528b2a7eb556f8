; x87, part 2: FSTENV/FNSAVE images in 16- and 32-bit forms, in protected and in real mode, and
; FLDENV/FRSTOR of them; FXSAVE/FXRSTOR (x87 part); rounding control (nearest/down/up/zero) on
; FIST/FISTP/FRNDINT/FADD/FDIV; precision control on FDIV/FADD/FSQRT; unmasked exceptions
; -> #MF with CR0.NE=1 (status word, FIP/FOP/FDP of the faulting instruction, the #MF's EIP);
; FSQRT FSIN FCOS FPTAN FPATAN F2XM1 FYL2X FYL2XP1 FSCALE FPREM FPREM1 FXTRACT on ordinary
; arguments (results stored as doubles), FPREM/FPREM1 quotient bits in C0/C3/C1 and C2.
; QEMU 7.2 deviations from the SDM, left out of the default build (QEMU is the oracle) and
; shown in the -DSDM build, which is checked against fpu2-sdm.expected (recorded from Bochs 2.7
; and checked by hand against the SDM):
;   - C1 is not set when an inexact result was rounded up (FDIV, FADD, FPTAN...): masked.
;   - FOP is not kept: FSTENV/FSAVE/FXSAVE store 0 (FXSAVE leaves the FOP word unwritten).
;   - FXSAVE stores FIP/FCS/FDP/FDS as 0.
;   - FNSTENV does not mask the exceptions in CW after storing the environment.
;   - real-mode FSTENV/FSAVE use the protected-mode layout (offset + selector) instead of the
;     real-mode one (FIP[15:0], FOP | FIP[31:16] << 12, ...): only CW/SW/TW are shown.
;   - FIP at #MF is not the faulting instruction's address.
;   - an unmasked #Z still writes the result (infinity) and pops for FDIVP; an unmasked #IA
;     still writes the QNaN indefinite; only FWAIT (not a waiting x87 instruction such as FLD1)
;     signals a pending #MF.
;   - FPREM1 does not report the quotient bits in C0/C3/C1 (FPREM does).
; Bochs 2.7 gets FPATAN wrong for x<0, y<0 (atan2(-1,-1) = -pi/4 instead of -3pi/4; the SDM's
; FPATAN table gives -pi/2..-pi): that case is only in the default build (QEMU is right).
; C0/C2/C3 after FDIV/FSQRT are undefined (SDM) and masked in the #MF lines.
%include "pmlib.inc"
%define B 0x20000                   ; result buffer
%define ENV 0x20100                 ; FSTENV/FSAVE images
%define FXA 0x20400                 ; FXSAVE area (16-byte aligned)
%define OPND 0x20050                ; memory operand whose address shows up as FDP

; print "name=hi lo" of the qword at B
%macro DUMPQ 1
    PSTR {%1, '='}
    mov eax, [B+4]
    call hex32
    call space
    mov eax, [B]
    call hex32
    call newline
%endmacro
%macro R64 1
    fstp qword [B]
    DUMPQ %1
%endmacro
%macro R80 1
    fstp tword [B]
    PSTR {%1, '='}
    movzx eax, word [B+8]
    call hex16
    call space
    mov eax, [B+4]
    call hex32
    call space
    mov eax, [B]
    call hex32
    call newline
%endmacro
%macro CCODES 1-2 0x4700 ; C3 C2 C1 C0 (%2: the bits shown in the QEMU build)
    fnstsw ax
%ifdef SDM
    and eax, 0x4700
%else
    and eax, %2
%endif
    P16 %1, ax
%endmacro
%macro SETCW 1
    mov word [cwtmp], %1
    fldcw [cwtmp]
%endmacro

main:
    mov eax, cr0
    and eax, ~0x0C                  ; EM=0 TS=0
    or eax, 0x22                    ; MP NE
    mov cr0, eax
    mov eax, cr4
    or eax, 0x200                   ; OSFXSR
    mov cr4, eax
    SETDESC 0x30, 0x10000, 0xFFFF, 0x9B, 0   ; 16-bit code, base = image (for real mode)
    SETDESC 0x38, 0, 0xFFFF, 0x93, 0         ; 16-bit data
    mov dword [OPND], 0x40400000             ; 3.0 as a float
    IDTGATE 16, mf_handler, 0x8E

    call env_tests
    call fx_tests
    call rc_tests
    call pc_tests
    call mf_tests
    call transc_tests
    ret

; ---------------------------------------------------------------- environment images
; a known state: CW 0x0772 (RC=down, PC=extended, IM ZM OM unmasked), three registers, last
; memory operand FLD m32 [OPND], last instruction FADD (FIP = fadd_insn - 2); exact sums, so
; the images do not depend on extended-precision arithmetic.
env_state:
    fninit
    SETCW 0x0772
    fld1
    fld qword [two]
fld_insn:
    fld dword [OPND]
    fadd st0, st1                   ; no memory operand: FDP stays; FIP = this
fadd_insn:
    ret

env_tests:
    PLN "-- fnstenv 32-bit PM"
    call env_state
    mov edi, ENV
    mov ecx, 64
    mov eax, 0xA5A5A5A5
    rep stosd
    fnstenv [ENV]
    call dump_env32
%ifdef SDM
    fnstcw [B]
    P16 "cw after fnstenv", [B]     ; all exceptions masked by FNSTENV
%endif
    PLN "-- fnstenv 16-bit PM"
    call env_state
    o16 fnstenv [ENV]
    call dump_env16
    PLN "-- fnsave 32-bit PM"
    call env_state
    fnsave [ENV]
    call dump_env32
    mov esi, ENV + 28
    mov ecx, 20
    call dumpd
    fnstcw [B]
    P16 "cw after fnsave", [B]
    fnstsw [B]
    P16 "sw after fnsave", [B]
    PLN "-- frstor 32-bit, fstp"
    frstor [ENV]
    fnstcw [B]
    P16 "cw", [B]
    CCODES "cc"
    fnstsw [B]
    P16 "sw", [B]
    R80 "st0"
    R80 "st1"
    R80 "st2"
    PLN "-- fnsave 16-bit PM"
    call env_state
    o16 fnsave [ENV]
    call dump_env16
    mov esi, ENV + 14
    mov ecx, 20
    call dumpd
    PLN "-- frstor 16-bit"
    o16 frstor [ENV]
    fnstsw [B]
    P16 "sw", [B]
    R80 "st0"
    PLN "-- fldenv 32-bit: tags and CW/SW from memory"
    fninit
    fld1
    fldz
    mov dword [ENV], 0xFFFF0C7F     ; RC=zero, PC=ext
    mov dword [ENV+4], 0xFFFF3D00   ; TOP=7, C3 C2 C0 set
    mov dword [ENV+8], 0xFFFF3FFF   ; tags: only physical register 7 (= ST0, 1.0) in use
    fldenv [ENV]
    fnstcw [B]
    P16 "cw", [B]
    fnstsw [B]
    P16 "sw", [B]
    fnstenv [ENV]
    movzx eax, word [ENV+8]
    P16 "tw", ax
    fninit

    PLN "-- real mode"
    call rm_tests
    PLN "  32-bit fnstenv RM"
    P16 "cw", [ENV + 0x100]
    P16 "sw", [ENV + 0x104]
    P16 "tw", [ENV + 0x108]
%ifdef SDM
    mov esi, ENV + 0x100 + 12       ; FIP[15:0], FOP | FIP[31:16] << 12, FDP[15:0], FDP[31:16] << 12
    mov ecx, 4
    call dumpd
%endif
    PLN "  16-bit fnstenv RM"
    P16 "cw", [ENV + 0x180]
    P16 "sw", [ENV + 0x182]
    P16 "tw", [ENV + 0x184]
%ifdef SDM
    P16 "fip", [ENV + 0x186]
    P16 "fop|fip hi", [ENV + 0x188]
    P16 "fdp", [ENV + 0x18A]
    P16 "fdp hi", [ENV + 0x18C]
%endif
    PLN "  32-bit fnsave RM (regs)"
    mov esi, ENV + 0x200 + 28
    mov ecx, 20
    call dumpd
    PLN "  frstor of the 32-bit RM image in PM"
    frstor [ENV + 0x200]
    fnstsw [B]
    P16 "sw", [B]
    R80 "st0"
    R80 "st1"
    fninit
    ret

; 32-bit PM image at ENV: CW SW TW (low words), FIP, FCS, FOP, FDP, FDS
dump_env32:
    mov esi, ENV
dump_env32r:
    P16 "cw", [esi]
    P16 "sw", [esi+4]
    P16 "tw", [esi+8]
    ; (the reserved high words are not shown: Bochs writes 0xFFFF, QEMU 0; the SDM is silent)
    mov eax, [esi+12]
    P32 "fip", eax
    P16 "fcs", [esi+16]
%ifdef SDM
    P16 "fop", [esi+18]
%endif
    P32 "fdp", [esi+20]
    P16 "fds", [esi+24]
    ret
dump_env16:
    mov esi, ENV
dump_env16r:
    P16 "cw", [esi]
    P16 "sw", [esi+2]
    P16 "tw", [esi+4]
    P16 "fip", [esi+6]
    P16 "fcs", [esi+8]
    P16 "fdp", [esi+10]
    P16 "fds", [esi+12]
    ret

; switch to real mode, store environments there, come back
rm_sp: dd 0
rm_tests:
    mov [rm_sp], esp
    jmp 0x30:(.p16 - 0x10000)
BITS 16
.p16:
    mov ax, 0x38
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr0
    and al, 0xFE
    mov cr0, eax
    jmp 0x1000:(.real - 0x10000)
.real:
    mov ax, 0x2000
    mov ds, ax
    mov es, ax
    fninit
    fld1
    fldpi
rm_fld:
    fld dword [OPND - 0x20000]
    o32 fnstenv [ENV - 0x20000 + 0x100]
    fnstenv [ENV - 0x20000 + 0x180]
    o32 fnsave [ENV - 0x20000 + 0x200]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp dword KCODE:.back
BITS 32
.back:
    mov ax, KDATA
    mov ds, ax
    mov ss, ax
    mov esp, [rm_sp]
    call flat
    ret

; ---------------------------------------------------------------- FXSAVE / FXRSTOR
fx_tests:
    PLN "-- fxsave"
    call env_state
    mov edi, FXA
    mov ecx, 128
    mov eax, 0x5A5A5A5A
    rep stosd
    fxsave [FXA]
    P16 "fcw", [FXA]
    P16 "fsw", [FXA+2]
    P8 "ftw", [FXA+4]
%ifdef SDM
    P16 "fop", [FXA+6]
    P32 "fip", [FXA+8]
    P16 "fcs", [FXA+12]
    P32 "fdp", [FXA+16]
    P16 "fds", [FXA+20]
%endif
    mov esi, FXA + 0x20             ; ST0..ST2: 10 bytes each in 16-byte slots
    mov ecx, 3
.r: mov eax, [esi+8]
    and eax, 0xFFFF
    call hex16
    call space
    mov eax, [esi+4]
    call hex32
    call space
    mov eax, [esi]
    call hex32
    call newline
    add esi, 16
    loop .r
    fnstsw [B]
    P16 "sw after fxsave", [B]      ; FXSAVE does not reinitialise the FPU
    PLN "-- fxrstor of a modified image"
    mov word [FXA], 0x0F7F          ; RC=zero PC=ext
    mov byte [FXA+4], 0x80          ; only physical register 7 valid (TOP from FSW)
    mov word [FXA+2], 0x3800        ; TOP=7
    mov dword [FXA+0x20], 0
    mov dword [FXA+0x24], 0xC0000000
    mov word [FXA+0x28], 0x4000     ; ST0 = 3.0
    fninit
    fxrstor [FXA]
    fnstcw [B]
    P16 "cw", [B]
    fnstsw [B]
    P16 "sw", [B]
    fnstenv [ENV]
    P16 "tw", [ENV+8]
    R80 "st0"
    fninit
    ret

; ---------------------------------------------------------------- rounding control
rc_tests:
    PLN "-- rounding control"
    xor ebx, ebx
.l: mov eax, ebx
    shl eax, 10
    or eax, 0x037F
    mov [cwtmp], ax
    PSTR "RC="
    mov eax, ebx
    call hex8
    call newline
    fninit
    fldcw [cwtmp]
    mov esi, rc_vals
    mov ecx, 5
.v: fld qword [esi]
    fist dword [B]
    fistp word [B+4]
    fld qword [esi]
    frndint
    fistp dword [B+8]
    mov eax, [B]
    call hex32
    call space
    movzx eax, word [B+4]
    call hex16
    call space
    mov eax, [B+8]
    call hex32
    call newline
    add esi, 8
    loop .v
    fld1
    fld tword [tiny]
    fadd st0, st1
    R80 "  1+2^-70"
    fchs
    fld tword [tiny]
    fchs
    fadd st0, st1
    R80 "  -1-2^-70"
    fstp st0
    fld1
    fdiv qword [three]
    R80 "  1/3"
    fld1
    fchs
    fdiv qword [three]
    R80 "  -1/3"
    fld qword [two]
    fsqrt
    R80 "  sqrt2"
    fld1
    fdiv qword [three]
    R64 "  1/3 m64"
    fld1
    fdiv qword [three]
    fstp dword [B]
    P32 "  1/3 m32", [B]
    inc ebx
    cmp ebx, 4
    jb .l
    fninit
    ret

; ---------------------------------------------------------------- precision control
pc_tests:
    PLN "-- precision control"
    xor ebx, ebx
.l: mov eax, ebx
    shl eax, 8
    or eax, 0x007F
    mov [cwtmp], ax
    PSTR "PC="
    mov eax, ebx
    call hex8
    call newline
    fninit
    fldcw [cwtmp]
    fld1
    fdiv qword [three]
    R80 "  1/3"
    fld qword [two]
    fsqrt
    R80 "  sqrt2"
    fld1
    fld tword [tiny2]
    faddp st1, st0
    R80 "  1+2^-30"
    fld qword [three]
    fmul qword [third64]
    R80 "  3*third"
    inc ebx
    cmp ebx, 4
    jb .l
    fninit
    ret

; ---------------------------------------------------------------- #MF
mf_count: dd 0
mf_ret: dd 0
mf_handler:
    push eax
    fnstsw ax
    and ax, ~0x4500                 ; C0 C2 C3: undefined for FDIV and FSQRT (SDM)
%ifndef SDM
    and ax, ~0x0200                 ; C1 (QEMU does not set it when rounding up)
%endif
    P16 "  #MF sw", ax
    fnstenv [ENV]
%ifdef SDM
    mov eax, [ENV+12]
    sub eax, [mf_insn]
    P32 "  fip - insn", eax
    P16 "  fop", [ENV+18]
    P32 "  fdp", [ENV+20]
%endif
    mov eax, [esp+4]
    sub eax, [mf_wait]
    P32 "  eip - wait", eax
    fldenv [ENV]
    fnclex
    inc dword [mf_count]
    pop eax
    iretd
mf_insn: dd 0
mf_wait: dd 0

%macro MFCASE 4 ; name, control word, label of the faulting insn, label of the waiting insn
    PLN %1
    mov dword [mf_insn], %3
    mov dword [mf_wait], %4
    fninit
    SETCW %2
%endmacro

mf_tests:
    PLN "-- #MF"
    MFCASE "zero divide, fwait", 0x037B, .i1, .w1
    fld qword [ten]
    fldz
.i1: fdiv st1, st0
    mov eax, 1
.w1: fwait
    CCODES "  after cc"
    fnstsw [B]
    P16 "  after sw", [B]
    R80 "  st0"
%ifdef SDM
    R80 "  st1 (unchanged)"
%else
    fstp st0
%endif

    MFCASE "invalid fsqrt(-1), next fp insn", 0x037E, .i2, .w2
    fld qword [minus1]
.i2: fsqrt
%ifdef SDM
.w2: fld1                           ; any waiting x87 instruction signals the pending #MF
    fnstsw ax
    and ax, ~0x4500
    P16 "  after sw", ax
    R80 "  st0"
    R80 "  st1"
%else
.w2: fwait
    fnstsw ax
    and ax, ~0x4500                 ; undefined after FSQRT
    P16 "  after sw", ax
%endif

    MFCASE "precision m64 operand", 0x035F, .i3, .w3
    fld1
.i3: fdiv qword [three]
.w3: fwait
    R80 "  st0 (stored)"

    MFCASE "no #MF for fnstsw/fnclex", 0x037B, .i4, .w4
    fld1
    fldz
.i4: fdivp st1, st0
    fnstsw ax
%ifndef SDM
    and ax, ~0x3800                 ; TOP: QEMU pops the stack although ZE is unmasked
%endif
    P16 "  pending sw", ax
    fnclex
.w4: fwait
    PLN "  no #MF"
    P32 "#MF count", [mf_count]
    fninit
    ret

; ---------------------------------------------------------------- transcendental
transc_tests:
    PLN "-- transcendental (RC nearest, PC ext)"
    fninit
    fld qword [two]
    fsqrt
    R64 "fsqrt 2"
    fld qword [half]
    fsin
    R64 "fsin .5"
    fld qword [half]
    fcos
    R64 "fcos .5"
    fld qword [one_p2]
    fsin
    R64 "fsin 1.2"
    fld qword [half]
    fsincos
    R64 "fsincos cos"
    R64 "fsincos sin"
    fld qword [half]
    fptan
    CCODES "fptan cc", 0x4500
    R64 "fptan 1"
    R64 "fptan tan"
    fld qword [one]
    fld qword [two]
    fpatan                          ; atan(1/2)
    R64 "fpatan 1,2"
%ifndef SDM
    fld qword [minus1]
    fld qword [minus1]
    fpatan                          ; atan2(-1,-1) = -3pi/4 (Bochs 2.7: -pi/4, wrong)
    R64 "fpatan -1,-1"
%endif
    fld qword [half]
    f2xm1
    R64 "f2xm1 .5"
    fld qword [mquarter]
    f2xm1
    R64 "f2xm1 -.25"
    fld qword [onehalf]
    fld qword [three]
    fyl2x                           ; 1.5*log2(3)
    R64 "fyl2x 1.5,3"
    fld qword [two]
    fld qword [quarter]
    fyl2xp1                         ; 2*log2(1.25)
    R64 "fyl2xp1 2,.25"
    fld qword [three]
    fld qword [onehalf]
    fscale                          ; 1.5*2^3
    R64 "fscale"
    fstp st0
    fld qword [mthreehalf]
    fld qword [ten]
    fscale                          ; 10 * 2^-1 (truncated toward 0)
    R64 "fscale -1.5"
    fstp st0
    fld qword [three]
    fld qword [tenhalf]
    fprem
    CCODES "fprem 10.5,3 cc"
    R64 "fprem 10.5,3"
    fstp st0
    fld qword [three]
    fld qword [tenhalf]
    fchs
    fprem
    CCODES "fprem -10.5,3 cc"
    R64 "fprem -10.5,3"
    fstp st0
    fld qword [three]
    fld qword [tenhalf]
    fprem1
    CCODES "fprem1 10.5,3 cc", 0x0400
    R64 "fprem1 10.5,3"
    fstp st0
    fld qword [three]
    fld qword [sixteen]
    fprem
    CCODES "fprem 16,3 cc"
    R64 "fprem 16,3"
    fstp st0
    fld qword [three]
    fld qword [seventeen]
    fprem1
    CCODES "fprem1 17,3 cc", 0x0400
    R64 "fprem1 17,3"
    fstp st0
    fld qword [pi64]
    fld qword [big]                 ; 2^100: partial remainder, C2=1
    fprem
    CCODES "fprem 2^100,pi cc"
    fst qword [B]
    DUMPQ "fprem 2^100,pi partial"
    fprem
    CCODES "fprem again cc"
    R64 "fprem again"
    fstp st0
    fld qword [twelve]
    fxtract
    R64 "fxtract sig"
    R64 "fxtract exp"
    fld qword [mtiny]
    fxtract
    R64 "fxtract sig -3/1024"
    R64 "fxtract exp -3/1024"
    fnstsw ax
    P16 "sw", ax
    fninit
    ret

align 8
cwtmp: dw 0, 0
rc_vals: dq 2.5, -2.5, 3.5, -1.5, 1.75
tiny: dq 0x8000000000000000         ; 2^-70
      dw 0x3FFF - 70
tiny2: dq 0x8000000000000000        ; 2^-30
      dw 0x3FFF - 30
three: dq 3.0
two: dq 2.0
one: dq 1.0
half: dq 0.5
quarter: dq 0.25
mquarter: dq -0.25
onehalf: dq 1.5
mthreehalf: dq -1.5
one_p2: dq 1.2
ten: dq 10.0
tenhalf: dq 10.5
sixteen: dq 16.0
seventeen: dq 17.0
twelve: dq 12.0
minus1: dq -1.0
pi64: dq 0x400921FB54442D18
big: dq 0x4630000000000000          ; 2^100
mtiny: dq -0.0029296875             ; -3/1024
third64: dq 0x3FD5555555555555      ; 1/3 rounded to double
%include "pmend.inc"
