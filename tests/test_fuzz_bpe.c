/* test_fuzz_bpe.c: the fuzz_tokenize_bpe harness (fuzz/bpe_harness.h) run
 * in the ordinary (and sanitized) suite: every file of
 * fuzz/corpus/tokenize_bpe/, every shared tokenizer case under each
 * pre-tokenizer and flag combination, and 20000 seeded random inputs drawn
 * from an alphabet that hits the matchers' branches (letters, digits,
 * apostrophes, CR/LF, spaces, Cyrillic, emoji, the special tokens' bytes,
 * invalid sequences). With HL_WRITE_SEEDS set it (re)writes the seed corpus. */
#include "test_util.h"

static int bpe_failed;
#define BPE_ASSERT(c) do { if (!(c)) { bpe_failed++; \
    fprintf(stderr, "%s:%d: harness check failed: %s\n", __FILE__, __LINE__, #c); } } while (0)
#include "../fuzz/bpe_harness.h"
#include "util/rng.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

#ifndef HL_SOURCE_DIR
#define HL_SOURCE_DIR "."
#endif

static bpe_fixture fx;

static void replay_file(const char *target, const char *name, const void *data, size_t size) {
    (void)target;
    (void)name;
    bpe_harness_one(&fx, data, size);
}

static const char *const seeds[] = {
    "Hello world", " the theater 123 4567", "I'm you're THEY'LL 's", "a\r\n\n  b\t\tc   ", "<|im_start|>user<think>hi",
    "<|endoftext|><th<thin", "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xF0\x9F\x98\x80\xF0\x9F\x98\x81",
    "aaaaaaaaaaaaabababab", "\xCE\x94" "21 zz\xCE\x94" "21zzz", "x = y+=z; $a^b~c|d", "\xC3(bad", "ok\xFF",
};

int main(void) {
    bpe_fixture_build(&fx);
    int write = getenv("HL_WRITE_SEEDS") != NULL, n_seed = 0;
    char path[512];
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        for (int sel = 0; sel < 32; sel += 9) { /* a few selector bytes per seed */
            size_t n = strlen(seeds[i]);
            uint8_t *buf = malloc(n + 1);
            REQUIRE(buf);
            buf[0] = (uint8_t)(sel + (int)i);
            memcpy(buf + 1, seeds[i], n);
            bpe_harness_one(&fx, buf, n + 1);
            if (write) {
                mkdir(HL_SOURCE_DIR "/fuzz/corpus/tokenize_bpe", 0755);
                snprintf(path, sizeof path, HL_SOURCE_DIR "/fuzz/corpus/tokenize_bpe/seed_%02zu_%02d", i, sel);
                FILE *f = fopen(path, "wb");
                REQUIRE(f && fwrite(buf, 1, n + 1, f) == n + 1 && fclose(f) == 0);
            }
            n_seed++;
            free(buf);
        }
    int replayed = hl_test_replay_dir(HL_SOURCE_DIR "/fuzz/corpus", "tokenize_bpe", replay_file);
    CHECK_MSG(replayed > 0, "fuzz/corpus/tokenize_bpe is missing or empty");
    /* the shared tokenizer cases under every selector */
    size_t size;
    char *data = read_whole(shared_path("oracle/llamacpp/arch/tokenizer/cases.json"), &size);
    int n_cases = 0;
    if (data) {
        data = realloc(data, size + 1);
        data[size] = 0;
        cJSON *arr = cJSON_Parse(data);
        for (int i = 0; i < cJSON_GetArraySize(arr); i++) {
            const char *s = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), "text")->valuestring;
            size_t n = strlen(s);
            uint8_t *buf = malloc(n + 1);
            REQUIRE(buf);
            memcpy(buf + 1, s, n);
            for (int sel = 0; sel < 32; sel++) {
                buf[0] = (uint8_t)sel;
                bpe_harness_one(&fx, buf, n + 1);
            }
            free(buf);
            n_cases++;
        }
        cJSON_Delete(arr);
        free(data);
    }
    /* seeded random inputs */
    static const char *const alphabet[] = {"a", "b", "t", "h", "e", "i", "n", "A", "Z", "1", "2", "3", "0", "'",
                                           "s", "L", " ", "  ", "\r", "\n", "\t", ".", "!", "$", "+", "<", "|", ">",
                                           "\xD0\xB8", "\xD1\x82", "\xF0\x9F\x98\x80", "\xC2\xA0", "\xE3\x80\x80",
                                           "\xCE\x94", "z", "<|im_start|>", "<think>", "\xC3", "\xFF", "\xE2\x80\xA8"};
    hl_rng rng;
    hl_rng_seed(&rng, 17);
    uint8_t buf[512];
    for (int k = 0; k < 20000; k++) {
        size_t n = 1;
        buf[0] = (uint8_t)hl_rng_below(&rng, 256);
        int parts = 1 + (int)hl_rng_below(&rng, 24);
        for (int j = 0; j < parts; j++) {
            const char *a = alphabet[hl_rng_below(&rng, sizeof alphabet / sizeof alphabet[0])];
            size_t l = strlen(a);
            if (n + l > sizeof buf) break;
            memcpy(buf + n, a, l);
            n += l;
        }
        bpe_harness_one(&fx, buf, n);
    }
    /* the fixture really merges and splits specials (so the checks above bite) */
    for (int p = 0; p < BPE_N_PRE; p++) {
        int32_t *ids = NULL;
        size_t n = 0;
        hl_error err;
        CHECK_OK(hl_tokenizer_encode_special(fx.tok[p], " the", 4, 0, 0, 0, &ids, &n, &err), &err);
        CHECK_MSG(n == 1 && !strcmp(hl_tokenizer_piece(fx.tok[p], ids[0]), "\xC4\xA0the"), "%s: \" the\" is one piece",
                  bpe_pre_names_fz[p]);
        hl_free(ids);
        CHECK_OK(hl_tokenizer_encode_special(fx.tok[p], "<|im_start|>", 12, 0, 0, 1, &ids, &n, &err), &err);
        CHECK(n == 1 && hl_tokenizer_type(fx.tok[p], ids[0]) == 3);
        hl_free(ids);
        CHECK_OK(hl_tokenizer_encode_special(fx.tok[p], "<|im_start|>", 12, 0, 0, 0, &ids, &n, &err), &err);
        CHECK(n > 1);
        hl_free(ids);
    }
    bpe_fixture_free(&fx);
    hl_test_checks++;
    if (bpe_failed) hl_test_failures++;
    printf("bpe harness: %d seeds, %d corpus files, %d shared cases x 32 selectors, 20000 random inputs: %d failed "
           "checks\n", n_seed, replayed, n_cases, bpe_failed);
    return hl_test_finish("test_fuzz_bpe");
}
