; Paging: 4 KiB and 4 MiB (CR4.PSE) pages, accessed/dirty bits in PTEs and PDEs, #PF error
; codes and CR2 (not present, CR0.WP=0/1 supervisor writes, user/supervisor, crossing a page
; boundary, instruction fetch), INVLPG and CR3 reloads, global pages (flushed by CR4.PGE
; toggling), a #PF in the middle of REP MOVSD (ECX/ESI/EDI at the fault).
; The PDE accessed bit is printed only after successful accesses through it: QEMU 7.2 also
; sets it when a walk faults on a not-present PTE, which the SDM does not promise.
%include "pmlib.inc"
%define PD  0x100000
%define PT0 0x101000
%define PT1 0x102000
%define PTE1(a) (PT1 + (((a) >> 12) & 0x3FF) * 4)
main:
    ; identity map 0-4 MiB (user, writable), PT1 for 4-8 MiB, a 4 MiB page at 8 MiB
    mov edi, PD
    xor eax, eax
    mov ecx, 3*1024
    rep stosd
    mov edi, PT0
    mov eax, 7
    mov ecx, 1024
.f: stosd
    add eax, 0x1000
    loop .f
    mov dword [PD], PT0 | 7
    mov dword [PD+4], PT1 | 7
    mov dword [PD+8], 0x400000 | 0x87     ; PS, user, writable
    mov dword [PTE1(0x400000)], 0x200000 | 3   ; sup RW
    mov dword [PTE1(0x401000)], 0              ; not present
    mov dword [PTE1(0x402000)], 0x202000 | 1   ; sup RO
    mov dword [PTE1(0x403000)], 0x203000 | 3   ; sup RW
    mov dword [PTE1(0x404000)], 0x204000 | 5   ; user RO
    mov dword [PTE1(0x405000)], 0x205000 | 7   ; user RW
    mov dword [0x200000], 0xAAAA0000
    mov dword [0x201000], 0xBBBB0000
    mov dword [0x202000], 0xCCCC0000
    mov dword [0x204000], 0xDDDD0000
    mov dword [0x400000], 0x44440000
    mov eax, cr4
    or eax, 0x10                  ; PSE
    mov cr4, eax
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    P32 "cr0", cr0
    PLN "-- accessed/dirty"
    P32 "pde1", [PD+4]
    P32 "pte400", [PTE1(0x400000)]
    mov eax, [0x400000]
    P32 "read", eax
    P32 "pde1", [PD+4]
    P32 "pte400", [PTE1(0x400000)]
    mov dword [0x400004], 0x12345678
    P32 "pte400", [PTE1(0x400000)]
    P32 "phys", [0x200004]
    P32 "pde2", [PD+8]
    mov eax, [0x800000]
    P32 "4M read", eax
    P32 "pde2", [PD+8]
    mov byte [0x9FFFFF], 0x5A
    P32 "pde2", [PD+8]
    P8 "4M readback", [0x9FFFFF]
    mov eax, cr3                   ; the walks above cached the entries; flush them so the
    mov cr3, eax                   ; A/D bits below are set again
    and dword [PTE1(0x400000)], ~0x60
    mov dword [0x400008], 1        ; write first: A and D together
    P32 "pte400", [PTE1(0x400000)]

    PLN "-- faults (supervisor)"
    T "read np", mov eax, [0x401000]
    P32 "cr2", cr2
    T "write np", mov dword [0x401234], 0
    P32 "cr2", cr2
    T "wp0 write ro", mov dword [0x402000], 0x11111111
    P32 "ro phys", [0x202000]
    P32 "pte402", [PTE1(0x402000)]
    mov eax, cr0
    or eax, 0x10000                ; WP
    mov cr0, eax
    T "wp1 write ro", mov dword [0x402010], 0x22222222
    P32 "cr2", cr2
    T "wp1 read ro", mov eax, [0x402010]
    T "cross into np", mov eax, [0x400FFE]
    P32 "cr2", cr2
    T "fetch np", call 0x401000
    P32 "cr2", cr2
    T "sup access user page", mov eax, [0x405000]
    PLN "-- faults (user)"
    R3T "u read sup", mov eax, [0x403000]
    P32 "cr2", cr2
    R3T "u write sup", mov dword [0x403000], 0
    R3T "u read np", mov eax, [0x401000]
    R3T "u write np", mov dword [0x401000], 0
    R3T "u read user ro", mov eax, [0x404000]
    R3T "u write user ro", mov dword [0x404ABC], 0
    P32 "cr2", cr2
    R3T "u write user rw", mov dword [0x405000], 0
    R3T "u read 4M", mov eax, [0x800000]
    P32 "pte403", [PTE1(0x403000)]
    P32 "pte404", [PTE1(0x404000)]
    P32 "pte405", [PTE1(0x405000)]

    PLN "-- rep movsd into a not-present page"
    mov esi, SCRATCH
    mov edi, 0x400FF4
    mov ecx, 8
    mov dword [SCRATCH], 0x01010101
    mov dword [SCRATCH+4], 0x02020202
    mov dword [SCRATCH+8], 0x03030303
    mov dword [SCRATCH+12], 0x04040404
    T "rep movsd", rep movsd
    P32 "ecx", ecx
    P32 "esi", esi
    P32 "edi", edi
    P32 "cr2", cr2
    P32 "dst", [0x200FFC]
    mov esi, 0x400FF8
    mov edi, SCRATCH+0x100
    mov ecx, 5
    PSTR "rep movsb down "
    TRY .md
    std
    rep movsb
    cld
    PLN "nofault"
.md:
    P32 "ecx", ecx
    P32 "esi", esi
    P32 "edi", edi
    P32 "cr2", cr2
    mov ecx, 4
    mov esi, 0x401004
    mov edi, SCRATCH+0x100
    T "rep lodsd np", rep lodsd
    P32 "ecx", ecx

    PLN "-- invlpg / cr3"
    mov eax, [0x400000]
    P32 "before", eax
    mov dword [PTE1(0x400000)], 0x201000 | 3
    invlpg [0x400000]
    P32 "after invlpg", [0x400000]
    mov dword [PTE1(0x400000)], 0x202000 | 3
    mov eax, cr3
    mov cr3, eax
    P32 "after cr3", [0x400000]
    mov dword [PTE1(0x401000)], 0x204000 | 3   ; not-present -> present: no flush needed
    P32 "np->p", [0x401000]
    PLN "-- global pages"
    mov eax, cr4
    or eax, 0x80                   ; PGE
    mov cr4, eax
    mov dword [PTE1(0x405000)], 0x200000 | 0x107
    invlpg [0x405000]
    P32 "global", [0x405000]
    mov dword [PTE1(0x405000)], 0x201000 | 0x107
    mov eax, cr4
    and eax, ~0x80
    mov cr4, eax                   ; PGE 1 -> 0 flushes global entries too
    or eax, 0x80
    mov cr4, eax
    P32 "after pge toggle", [0x405000]
    mov dword [PTE1(0x405000)], 0x202000 | 0x107
    invlpg [0x405000]
    P32 "after invlpg", [0x405000]
    ; turn paging off again
    mov eax, cr0
    and eax, 0x7FFFFFFF
    mov cr0, eax
    P32 "cr0", cr0
    ret
%include "pmend.inc"
