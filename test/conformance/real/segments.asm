; Real-mode segmentation: segment arithmetic (seg*16+off), 16-bit effective-address wrap at 64 KiB, segment
; override prefixes, LDS/LES/LFS/LGS/LSS, MOV to/from segment registers, XLAT, operand/address-size prefix
; combinations, and unreal mode (a 4 GiB DS/ES/FS/GS limit kept after leaving protected mode).
%include "conf.inc"
        ; data: linear 0x12340 .. filled with distinct bytes
        mov     ax, 0x1234
        mov     es, ax
        xor     di, di
.f:     mov     ax, di
        xor     al, ah
        add     al, 0x11
        mov     [es:di], al
        inc     di
        cmp     di, 0x400
        jb      .f
        mov     ax, 0x1234
        mov     ds, ax
        mov     eax, [0x10]
        DUMP    "ds1234-off10"
        mov     ax, 0x1235
        mov     ds, ax
        mov     eax, [0]
        DUMP    "ds1235-off0 (same linear)"
        mov     ax, 0x0234
        mov     ds, ax
        mov     bx, 0xffff
        mov     si, 0x0011                     ; bx+si wraps to 0x0010 (16-bit EA), linear 0x2350
        mov     ax, 0x1234 - 0x1000
        mov     eax, [bx+si]
        DUMP    "ea-wrap-bx-si"
        mov     ax, 0x1134
        mov     ds, ax
        mov     eax, [bx+si+0x1000]           ; 0xffff+0x11+0x1000 -> 0x1010 ; linear 0x12350
        DUMP    "ea-wrap-disp"
        mov     ebx, 0x10                     ; a32: no wrap, bx high bits used
        mov     eax, [ebx+0x1000]
        DUMP    "a32-ea"
        ; overrides
        xor     ax, ax
        mov     ds, ax
        mov     ax, 0x1234
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     bx, 0x20
        mov     eax, [es:bx]
        DUMP    "es-override"
        mov     eax, [fs:bx+4]
        DUMP    "fs-override"
        mov     eax, [gs:bx+8]
        DUMP    "gs-override"
        mov     eax, [cs:R(cdata)]
        DUMP    "cs-override"
        mov     ax, 0x1234
        mov     ss, ax
        mov     bp, 0x30
        mov     eax, [bp]                     ; SS default
        mov     edx, [ds:bp+0x7000-0x30-4]    ; DS override of BP
        xor     cx, cx
        mov     ss, cx
        DUMP    "ss-default-bp"
        mov     ax, 0x1234
        mov     ds, ax
        mov     bx, 0x40
        mov     al, 5
        xlatb
        DUMP    "xlat"
        mov     al, 0xfe
        es xlatb
        DUMP    "xlat-es"
        ; LDS/LES/LFS/LGS/LSS from 0:0x600
        xor     ax, ax
        mov     ds, ax
        mov     dword [0x600], 0x56781234
        mov     word [0x604], 0x9abc
        lds     si, [0x600]
        DUMPSEG "lds"
        DUMP    "lds-regs"
        xor     ax, ax
        mov     ds, ax
        les     edi, [0x600]
        lfs     bx, [0x600]
        lgs     ecx, [0x600]
        DUMPSEG "les-lfs-lgs"
        DUMP    "les-lfs-lgs-regs"
        mov     dword [0x608], 0x00006ff0
        mov     word [0x60c], 0
        lss     esp, [0x608]
        DUMP    "lss"
        mov     esp, 0x7000
        ; mov sreg <-> r/m
        mov     ax, 0x4321
        mov     es, ax
        mov     ebx, 0xffffffff
        mov     bx, es
        mov     ecx, 0xffffffff
        mov     ecx, es                       ; 32-bit destination: upper bits zero on P6
        mov     word [0x610], 0
        mov     [0x610], es
        mov     dx, [0x610]
        DUMP    "mov-sreg"
        ; operand/address-size prefix combinations
        xor     ax, ax
        mov     es, ax
        mov     dword [0x620], 0x89abcdef
        mov     dword [0x624], 0x01234567
        mov     ebx, 0x620
        mov     eax, 0
        db      0x8b, 0x07                    ; mov ax, [bx]
        DUMP    "pfx-none"
        db      0x66, 0x8b, 0x07              ; mov eax, [bx]
        DUMP    "pfx-66"
        mov     eax, 0
        db      0x67, 0x8b, 0x03              ; mov ax, [ebx]
        DUMP    "pfx-67"
        db      0x66, 0x67, 0x8b, 0x43, 0x04  ; mov eax, [ebx+4]
        DUMP    "pfx-66-67"
        db      0x67, 0x66, 0x8b, 0x43, 0x02  ; same, prefixes swapped
        DUMP    "pfx-67-66"
        db      0x66, 0x66, 0x8b, 0x07        ; repeated 66
        DUMP    "pfx-66-66"
        db      0x26, 0x66, 0x2e, 0x8b, 0x07  ; two segment prefixes: the last (cs) wins
        DUMP    "pfx-es-cs"
        ; unreal mode
        cli
        o32 lgdt [cs:R(_gdtr)]
        mov     eax, cr0
        or      al, 1
        mov     cr0, eax
        jmp     .pm
.pm:    mov     bx, SEL_DATA32
        mov     ds, bx
        mov     es, bx
        mov     fs, bx
        mov     gs, bx
        and     al, 0xfe
        mov     cr0, eax
        jmp     0xF000:R(.rm)
.rm:    xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     ax, 0x10
        mov     gs, ax                        ; reloading in real mode sets the base, keeps the limit
        mov     dword [dword 0x00150000], 0xfeedf00d
        mov     eax, [dword 0x00150000]
        mov     ebx, [es:dword 0x00150000]
        mov     ecx, [gs:dword 0x00150000 - 0x100]
        mov     edi, 0x00160000
        mov     esi, 0x00150000
        mov     ecx, 2
        a32 rep movsw
        mov     edx, [dword 0x00160000]
        DUMP    "unreal"
        DUMPSEG "unreal-segs"
        EXIT_OK
cdata:  dd      0x600df00d
%include "conf_end.inc"
