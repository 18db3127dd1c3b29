/* test_scene_metrics.c: the read metrics of `decode --eval` (scene_metrics.c)
 * on hand-made outputs: part recall counts the parts the reference names,
 * as whole words, case-insensitively (Cyrillic too), not inflected forms;
 * order needs two named parts in a form that states order; precision counts
 * output words that are some lexeme's part; facet recall as parts. */
#include "hyperlexeme/scene.h"
#include "test_util.h"

static const char *const any_parts[] = {"тишина", "вход", "страх", "river", "stone", "light"};

static int is_part(void *user, const char *w) {
    (void)user;
    for (size_t i = 0; i < sizeof any_parts / sizeof *any_parts; i++)
        if (!strcmp(w, any_parts[i])) return 1;
    return 0;
}

static hl_read_stats score(const char *got, const char *ref, const char *const *parts, int np, const char *const *facets,
                           int nf, int order) {
    hl_read_stats st;
    memset(&st, 0, sizeof st);
    hl_read_score(got, ref, parts, np, facets, nf, order, is_part, NULL, &st);
    return st;
}

int main(void) {
    const char *ru[3] = {"тишина", "вход", "страх"};
    const char *ref = "⟁🜂 тишина—вход—страх ✶";
    hl_read_stats st = score(ref, ref, ru, 3, NULL, 0, 1);
    CHECK(st.parts_ref == 3 && st.parts_hit == 3 && st.order_n == 1 && st.order_ok == 1);
    CHECK(st.named == 3 && st.named_right == 3);

    st = score("⟁🜂 страх—вход—тишина ✶", ref, ru, 3, NULL, 0, 1);
    CHECK(st.parts_hit == 3 && st.order_n == 1 && st.order_ok == 0); /* all named, wrong order */

    st = score("⟁🜂 страх—вход—тишина ✶", ref, ru, 3, NULL, 0, 0);
    CHECK(st.parts_hit == 3 && st.order_n == 0); /* a form without a stated order */

    st = score("⟁ вход", ref, ru, 3, NULL, 0, 1);
    CHECK(st.parts_ref == 3 && st.parts_hit == 1 && st.order_n == 0); /* one named part says nothing of order */

    /* Case folds (Cyrillic too); inflected forms are other words. */
    st = score("Тишина у входа. СТРАХ.", ref, ru, 3, NULL, 0, 0);
    CHECK_MSG(st.parts_hit == 2, "hit %lld", (long long)st.parts_hit);

    /* Only the parts the reference names count. */
    st = score("тишина", "У входа тишина густеет.", ru, 3, NULL, 0, 0);
    CHECK(st.parts_ref == 1 && st.parts_hit == 1);

    /* Precision: another scene's part in the output. */
    st = score("river—вход", ref, ru, 3, NULL, 0, 1);
    CHECK(st.named == 2 && st.named_right == 1 && st.parts_hit == 1);
    st = score("вход вход вход", ref, ru, 3, NULL, 0, 0);
    CHECK(st.named == 1 && st.named_right == 1); /* each distinct word once */

    /* Facets, English, punctuation and digits around words. */
    const char *en[2] = {"river", "stone"}, *fac[2] = {"fear", "night"};
    st = score("Report: river, stone. Tone: hope.", "Report: river, stone. Tone: fear.", en, 2, fac, 2, 0);
    CHECK(st.facets_ref == 1 && st.facets_hit == 0 && st.parts_hit == 2);
    st = score("f(river,stone)=river+stone;fear", "f(river, stone) = river + stone; fear", en, 2, fac, 2, 1);
    CHECK(st.parts_hit == 2 && st.order_ok == 1 && st.facets_hit == 1);
    st = score("riverstone 2stone", "river stone", en, 2, NULL, 0, 1);
    CHECK(st.parts_hit == 0); /* inside a longer word is not naming it */

    char w[64];
    hl_read_lower_word("Ёлка", w, sizeof w);
    CHECK(!strcmp(w, "ёлка"));
    hl_read_lower_word("two words", w, sizeof w);
    CHECK(w[0] == 0);
    /* Nothing to count: empty strings. */
    st = score("", "", ru, 3, NULL, 0, 1);
    CHECK(st.parts_ref == 0 && st.named == 0);
    return hl_test_finish("test_scene_metrics");
}
