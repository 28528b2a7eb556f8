; RDMSR/WRMSR of the TSC and SYSENTER MSRs, #GP(0) at CPL 3,
; SYSENTER/SYSEXIT (CS/SS derived from IA32_SYSENTER_CS, ESP/EIP from the MSRs, IF cleared
; by SYSENTER, EDX/ECX -> EIP/ESP on SYSEXIT), #GP(0) for SYSENTER with SYSENTER_CS = 0.
%include "pmlib.inc"
main:
    SETDESC 0x30, 0, 0xFFFFF, 0x9B, 0xC      ; SYSENTER_CS: ring-0 code
    SETDESC 0x38, 0, 0xFFFFF, 0x93, 0xC      ;  +8 ring-0 stack
    SETDESC 0x40, 0, 0xFFFFF, 0xFB, 0xC      ; +16 ring-3 code
    SETDESC 0x48, 0, 0xFFFFF, 0xF3, 0xC      ; +24 ring-3 stack
    PLN "-- MSRs"
    mov ecx, 0x174
    mov eax, 0x30
    xor edx, edx
    wrmsr
    mov eax, 0xDEAD
    rdmsr
    P32 "cs lo", eax
    P32 "cs hi", edx
    mov ecx, 0x175
    mov eax, 0x70000
    wrmsr
    mov ecx, 0x176
    mov eax, sysenter_target
    wrmsr
    rdmsr
    P32 "eip msr", eax
    ; TSC: RDMSR 0x10 and RDTSC count up. (A WRMSR to the TSC is not checked: QEMU 7.2 TCG
    ; ignores it. Unknown MSRs are not checked either: neither QEMU nor Bochs raise #GP.)
    mov ecx, 0x10
    rdmsr
    mov esi, eax
    mov edi, edx
    rdtsc
    sub eax, esi
    sbb edx, edi
    setns al
    P8 "tsc monotonic", al
    mov ecx, 0x174
    R3T "rdmsr cpl3", rdmsr
    mov ecx, 0x174
    R3T "rdtsc cpl3 ok", rdtsc
    PLN "-- SYSENTER/SYSEXIT"
    mov eax, .r3
    mov ebx, 0x202
    call to_ring3
    P32 "r3 esp after", [0x20008]
    mov eax, [0x2000C]
    P32 "r3 cs", eax
    mov eax, [0x20010]
    P32 "r3 ss", eax
    mov ecx, 0x174
    xor eax, eax
    xor edx, edx
    wrmsr
    R3T "sysenter cs=0", sysenter
    T "sysexit cs=0", sysexit
    ret
.r3:
    mov ecx, 0x1111
    mov edx, 0x2222
    mov ebp, esp
    sysenter
.r3back:
    mov [0x20008], esp
    mov [0x2000C], cs
    mov [0x20010], ss
    int 0x7F
sysenter_target:
    mov [0x20000], esp
    pushfd
    pop eax
    P32 "efl", eax
    mov eax, cs
    P32 "cs", eax
    mov eax, ss
    P32 "ss", eax
    P32 "esp", esp
    P32 "ecx", ecx
    P32 "edx", edx
    mov edx, main.r3back
    mov ecx, ebp
    sub ecx, 16
    sysexit


%include "pmend.inc"
