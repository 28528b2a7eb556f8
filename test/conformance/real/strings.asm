; String instructions: MOVS/CMPS/SCAS/LODS/STOS, 8/16/32-bit, REP/REPE/REPNE, DF=0/1, 16- and 32-bit
; address size (0x67), segment overrides, count 0. Buffers: src at 1000:0000, dst at 2000:0000.
%include "conf.inc"
        jmp     main

; fill 1000:0000.. with i*7+3 (256 bytes), 2000:0000.. with 0xEE (256 bytes)
fill:   push    es
        push    ax
        push    cx
        push    di
        mov     ax, 0x1000
        mov     es, ax
        xor     di, di
        xor     cx, cx
.l:     mov     al, cl
        imul    ax, ax, 7
        add     al, 3
        mov     [es:di], al
        inc     di
        inc     cx
        cmp     cx, 256
        jb      .l
        mov     ax, 0x2000
        mov     es, ax
        xor     di, di
.m:     mov     byte [es:di], 0xEE
        inc     di
        cmp     di, 256
        jb      .m
        pop     di
        pop     cx
        pop     ax
        pop     es
        ret

%macro SEGS 0
        mov     ax, 0x1000
        mov     ds, ax
        mov     ax, 0x2000
        mov     es, ax
%endmacro
%macro SHOWDST 1
        push    ds
        push    word 0x2000
        pop     ds
        DUMPMEM %1, 0, 24
        pop     ds
%endmacro

main:
        ; ---- MOVS
        call    fill
        SEGS
        cld
        mov     esi, 0x12340002
        mov     edi, 0x56780003
        mov     ecx, 0xABCD0005
        rep movsb
        DUMP    "rep-movsb"
        SHOWDST "rep-movsb-dst"
        call    fill
        mov     si, 2
        mov     di, 4
        mov     cx, 3
        rep movsw
        DUMP    "rep-movsw"
        SHOWDST "rep-movsw-dst"
        call    fill
        mov     si, 1
        mov     di, 2
        mov     cx, 3
        rep movsd
        DUMP    "rep-movsd"
        SHOWDST "rep-movsd-dst"
        call    fill
        std
        mov     si, 20
        mov     di, 22
        mov     cx, 5
        rep movsw
        cld
        DUMP    "rep-movsw-std"
        SHOWDST "rep-movsw-std-dst"
        call    fill
        ; a32: the count is ECX (0x10000: with a16 CX=0 would copy nothing). The copy ends exactly at the
        ; 64 KiB limit: going past it is #GP(0) in real mode per the SDM, which QEMU does not check.
        mov     esi, 0
        mov     edi, 0
        mov     ecx, 0x10000
        a32 rep movsb
        DUMP    "a32-rep-movsb"
        SHOWDST "a32-rep-movsb-dst"
        call    fill
        mov     si, 0
        mov     di, 0
        mov     cx, 0
        rep movsd
        DUMP    "rep-count0"
        SHOWDST "rep-count0-dst"
        call    fill
        mov     si, 5
        mov     di, 0
        movsb
        movsw
        movsd
        DUMP    "movs-single"
        SHOWDST "movs-single-dst"
        ; segment override on the source: ES:SI -> ES:DI
        call    fill
        mov     si, 0
        mov     di, 8
        mov     cx, 4
        rep es movsb
        DUMP    "rep-es-movsb"
        SHOWDST "rep-es-movsb-dst"
        ; cs: source
        call    fill
        mov     si, R(csdata)
        mov     di, 0
        mov     cx, 2
        rep cs movsd
        DUMP    "rep-cs-movsd"
        SHOWDST "rep-cs-movsd-dst"
        ; 16-bit wrap of SI/DI
        call    fill
        mov     esi, 0x0000FFFF
        mov     edi, 0x0001FFFE
        mov     cx, 3
        rep movsb
        DUMP    "movsb-wrap"
        SHOWDST "movsb-wrap-dst"

        ; ---- STOS / LODS
        call    fill
        mov     eax, 0x11223344
        mov     di, 1
        mov     cx, 3
        rep stosw
        stosb
        stosd
        DUMP    "stos"
        SHOWDST "stos-dst"
        std
        mov     di, 16
        mov     cx, 2
        rep stosd
        cld
        DUMP    "stos-std"
        SHOWDST "stos-std-dst"
        mov     si, 3
        lodsb
        DUMP    "lodsb"
        lodsw
        DUMP    "lodsw"
        lodsd
        DUMP    "lodsd"
        std
        lodsw
        cld
        DUMP    "lodsw-std"
        mov     si, 0
        mov     cx, 4
        rep lodsb
        DUMP    "rep-lodsb"
        mov     esi, 0x10
        a32 lodsd
        DUMP    "a32-lodsd"

        ; ---- CMPS / SCAS (all flags defined)
        call    fill
        mov     ax, 0x1000
        mov     es, ax                  ; compare the source with itself, shifted
        mov     si, 0
        mov     di, 0
        mov     cx, 10
        repe cmpsb
        DUMP    "repe-cmpsb-equal"
        mov     byte [5], 0x55
        mov     si, 0
        mov     di, 0x100
        mov     byte [0x105], 0x99
        mov     ax, [0]
        mov     [0x100], ax
        mov     ax, [2]
        mov     [0x102], ax
        mov     ax, [4]
        mov     [0x104], al
        mov     cx, 10
        repe cmpsb
        DUMP    "repe-cmpsb-diff"
        mov     si, 0
        mov     di, 0x100
        mov     cx, 10
        repne cmpsb
        DUMP    "repne-cmpsb"
        mov     si, 0
        mov     di, 0x100
        mov     cx, 3
        repe cmpsw
        DUMP    "repe-cmpsw"
        mov     si, 0
        mov     di, 0x100
        cmpsd
        DUMP    "cmpsd"
        std
        mov     si, 8
        mov     di, 0x108
        mov     cx, 8
        repe cmpsb
        cld
        DUMP    "repe-cmpsb-std"
        mov     al, [7]
        mov     di, 0
        mov     cx, 20
        repne scasb
        DUMP    "repne-scasb"
        mov     ax, 0xFFFF
        mov     di, 0
        mov     cx, 20
        repne scasw
        DUMP    "repne-scasw-notfound"
        mov     eax, [0]
        mov     di, 0
        mov     cx, 4
        repe scasd
        DUMP    "repe-scasd"
        mov     edi, 0
        mov     ecx, 5
        mov     al, 3
        a32 repe scasb
        DUMP    "a32-repe-scasb"
        mov     cx, 0
        mov     di, 0
        repe scasb
        DUMP    "repe-scasb-count0"
        ; ds override on cmps source: fs:si vs es:di
        mov     ax, 0x2000
        mov     fs, ax
        mov     si, 0
        mov     di, 0
        mov     cx, 4
        repe fs cmpsb
        DUMP    "repe-fs-cmpsb"
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        EXIT_OK

csdata: dd      0xCAFEBABE, 0xDEADBEEF
%include "conf_end.inc"
