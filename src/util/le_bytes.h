/* le_bytes.h: reading little-endian integers from byte buffers (file
 * formats: GGUF, safetensors, llama2.c, quantized blocks), independent of
 * the host's byte order and of the buffer's alignment. */
#ifndef HL_UTIL_LE_BYTES_H
#define HL_UTIL_LE_BYTES_H
#include <stdint.h>
#include <string.h>

static inline uint16_t hl_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static inline uint32_t hl_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t hl_le64(const uint8_t *p) { return (uint64_t)hl_le32(p) | ((uint64_t)hl_le32(p + 4) << 32); }

/* The two's-complement int32 stored at p. */
static inline int32_t hl_le32_signed(const uint8_t *p) {
    uint32_t u = hl_le32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}
#endif
