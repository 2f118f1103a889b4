/* utf8.c - the UTF-8 rules the tokenizer needs, and the GPT-2 byte map.
 *
 * Two decoders on purpose: the lenient one reproduces llama.cpp's
 * unicode_cpt_from_utf8 (which the pre-tokenizer must match byte for byte:
 * overlong forms and surrogates decode, a bad byte becomes U+FFFD), the strict
 * one (Unicode Table 3-7) decides what the streaming detokenizer may emit. */
#include "tokenizer/tok_internal.h"

uint32_t tok_utf8_decode_lenient(const uint8_t *s, size_t len, size_t *pos) {
    size_t i = *pos;
    uint8_t b0 = s[i];
    if (!(b0 & 0x80)) {
        *pos = i + 1;
        return b0;
    }
#define CONT(k) (i + (k) < len && (s[i + (k)] & 0xc0) == 0x80)
    if ((b0 & 0xe0) == 0xc0 && CONT(1)) {
        *pos = i + 2;
        return ((uint32_t)(b0 & 0x1f) << 6) | (s[i + 1] & 0x3f);
    }
    if ((b0 & 0xf0) == 0xe0 && CONT(1) && CONT(2)) {
        *pos = i + 3;
        return ((uint32_t)(b0 & 0x0f) << 12) | ((uint32_t)(s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
    }
    if ((b0 & 0xf8) == 0xf0 && CONT(1) && CONT(2) && CONT(3)) {
        *pos = i + 4;
        return ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3f) << 12) |
               ((uint32_t)(s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
    }
#undef CONT
    *pos = i + 1;
    return 0xFFFD;
}

int tok_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int tok_utf8_check(const uint8_t *s, size_t len) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        need = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        need = 3;
        if (b0 == 0xe0) lo = 0xa0;
        if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        need = 4;
        if (b0 == 0xf0) lo = 0x90;
        if (b0 == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= len) return -need;
        uint8_t c = s[k];
        uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xbf;
        if (c < l || c > h) return 0;
    }
    return need;
}

/* bytes that GPT-2 maps to themselves: '!'..'~', U+00A1..U+00AC, U+00AE..U+00FF */
static bool byte_is_printable(uint32_t b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

/* The other 68 bytes take U+0100.. in byte order: 0x00-0x20 (33 of them),
 * 0x7F-0xA0 (34), 0xAD (1). */
uint32_t tok_byte_to_cp(uint8_t byte) {
    if (byte_is_printable(byte)) return byte;
    if (byte <= 0x20) return 256u + byte;
    if (byte <= 0xa0) return 256u + 33u + (byte - 0x7fu);
    return 256u + 67u; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(0x7f + (cp - 256 - 33));
    return cp == 256 + 67 ? 0xad : -1;
}
