#ifndef CLEW_CZSTD_SHIM_H
#define CLEW_CZSTD_SHIM_H
/* Clew uses three of zstd's advanced (stable in 1.5, still in the "static linking" section) entry
   points, all exported by Debian's shared libzstd: magicless frames, reading their header, and
   training a dictionary with fixed fastCover parameters. */
#define ZSTD_STATIC_LINKING_ONLY
#define ZDICT_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zdict.h>

static inline ZSTD_cParameter clew_zstd_c_format(void) { return ZSTD_c_format; }
static inline ZSTD_dParameter clew_zstd_d_format(void) { return ZSTD_d_format; }
static inline int clew_zstd_f_magicless(void) { return (int)ZSTD_f_zstd1_magicless; }

/* Decompressed size written in a magicless frame's header, or -1 when absent or malformed. */
static inline long long clew_zstd_magicless_content_size(const void *src, size_t size) {
    ZSTD_frameHeader h;
    size_t rc = ZSTD_getFrameHeader_advanced(&h, src, size, ZSTD_f_zstd1_magicless);
    if (rc != 0) return -1;
    if (h.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN || h.frameContentSize == ZSTD_CONTENTSIZE_ERROR) return -1;
    return (long long)h.frameContentSize;
}
#endif
