/* tml_tree_f32.c - TREE_ENSEMBLE: ONNX-ML TreeEnsembleRegressor / TreeEnsembleClassifier in float32,
 * computed as onnxruntime does (the reference of tinyml verify): the trees in order, each leaf's
 * weights summed (or MIN / MAX combined) in float per target with a "has a score" flag, then
 * the base values, the average, the post transform (LOGISTIC 1/(1+exp(-|x|)) reflected,
 * SOFTMAX, SOFTMAX_ZERO) and for a classifier the label, with onnxruntime's rules for two
 * classes (one class' weights only: "binary"; with all weights >= 0 the positive class needs a
 * score above 0.5, else above 0). The tables are constants (flash). */
#include <math.h>
#include <float.h>
#include "tml_kernels.h"

static float tree_logistic(float v)
{
    const float e = 1.0f / (1.0f + expf(-fabsf(v)));
    return v < 0 ? 1.0f - e : e;
}

static int32_t tree_leaf(const tml_tree_t *P, const float *x, int32_t i)
{
    for (;;) {
        const uint8_t m = TML_RDU8(P->mode + i);
        if (m == TML_TREE_LEAF) return i;
        const float v = x[TML_RD32(P->feature + i)], t = TML_RDF(P->threshold + i);
        int go;
        switch (m) {
        case TML_TREE_LEQ: go = v <= t; break;
        case TML_TREE_LT: go = v < t; break;
        case TML_TREE_GTE: go = v >= t; break;
        case TML_TREE_GT: go = v > t; break;
        case TML_TREE_EQ: go = v == t; break;
        default: go = v != t; break;
        }
        i = go ? TML_RD32(P->true_child + i) : TML_RD32(P->false_child + i);
    }
}

static void tree_transform(uint8_t post, float *s, uint32_t n)
{
    if (post == TML_POST_LOGISTIC) {
        for (uint32_t k = 0; k < n; ++k) s[k] = tree_logistic(s[k]);
    } else if (post == TML_POST_SOFTMAX || post == TML_POST_SOFTMAX_ZERO) {
        float mx = -FLT_MAX, sum = 0.0f;
        for (uint32_t k = 0; k < n; ++k) if (s[k] > mx) mx = s[k];
        const float zero_scale = expf(-mx);
        for (uint32_t k = 0; k < n; ++k) {
            if (post == TML_POST_SOFTMAX || s[k] > 0.0000001f || s[k] < -0.0000001f) {
                s[k] = expf(s[k] - mx);
                sum += s[k];
            } else {
                s[k] *= zero_scale;
            }
        }
        for (uint32_t k = 0; k < n; ++k) s[k] /= sum;
    }
}

/* onnxruntime's write_scores: n scores (1 or more); one score becomes two by 'second'. */
static void tree_write(const tml_tree_t *P, float *s, uint32_t n, int second, float *out)
{
    if (n >= 2) {
        tree_transform(P->post, s, n);
        for (uint32_t k = 0; k < n; ++k) out[k] = s[k];
        return;
    }
    const float v = s[0];
    if (second == 0 || second == 1) {
        out[0] = 1.0f - v; out[1] = v;
    } else if (second == 2 || second == 3) {
        if (P->post == TML_POST_LOGISTIC) {
            out[0] = tree_logistic(-v); out[1] = tree_logistic(v);
        } else if (second == 2) {
            out[0] = -v; out[1] = v;
        } else {
            out[0] = v; out[1] = -v;
        }
    } else {
        out[0] = v;
        if (P->n_targets > 1) out[1] = 0.0f;
    }
}

static int64_t tree_binary_label(const tml_tree_t *P, float pos, int *second)
{
    if (P->binary) {
        if (P->all_positive) {
            *second = pos > 0.5f ? 0 : 1;
            return TML_RD32(P->labels + (pos > 0.5f ? 1 : 0));
        }
        *second = pos > 0.0f ? 2 : 3;
        return TML_RD32(P->labels + (pos > 0.0f ? 1 : 0));
    }
    return pos > 0.0f ? 1 : 0;
}

void tml_tree_ensemble(const tml_tree_t *src, const float *x, float *scores, int64_t *labels)
{
    TML_LOAD_PARAMS(tml_tree_t, src);
    const uint32_t nt = P->n_targets;
    uint8_t has[TML_TREE_MAX_TARGETS];
    for (uint32_t r = 0; r < P->rows; ++r, x += P->features, scores += nt) {
        float *s = scores;
        for (uint32_t k = 0; k < nt; ++k) { s[k] = 0.0f; has[k] = 0; }
        for (uint32_t t = 0; t < P->n_trees; ++t) {
            const int32_t leaf = tree_leaf(P, x, TML_RD32(P->roots + t));
            /* a leaf's child slots hold its first weight and its weight count */
            const int32_t first = TML_RD32(P->false_child + leaf), count = TML_RD32(P->true_child + leaf);
            for (int32_t j = first; j < first + count; ++j) {
                const int32_t k = P->dense ? j - first : TML_RD32(P->weight_target + j);
                const float w = TML_RDF(P->weight_value + j);
                if (P->aggregate == TML_TREE_MIN) s[k] = (!has[k] || w < s[k]) ? w : s[k];
                else if (P->aggregate == TML_TREE_MAX) s[k] = (!has[k] || w > s[k]) ? w : s[k];
                else s[k] += w;
                has[k] = 1;
            }
        }
        if (!P->classifier) {
            const int use_base = P->n_base == nt;
            if (nt == 1) {   /* one target: only the base value (no post transform but PROBIT) */
                const float origin = P->n_base == 1 ? TML_RDF(P->base) : 0.0f;
                if (P->aggregate == TML_TREE_AVERAGE) s[0] /= (float)P->n_trees;
                s[0] = (P->aggregate == TML_TREE_MIN || P->aggregate == TML_TREE_MAX) && !has[0] ? origin
                       : s[0] + origin;
                continue;
            }
            for (uint32_t k = 0; k < nt; ++k) {
                if (P->aggregate == TML_TREE_AVERAGE) {
                    s[k] = use_base ? s[k] / (float)P->n_trees + TML_RDF(P->base + k) : s[k] / (float)P->n_trees;
                } else if (P->aggregate == TML_TREE_SUM) {
                    if (use_base) s[k] = s[k] + TML_RDF(P->base + k);
                } else {
                    s[k] = (use_base ? TML_RDF(P->base + k) : 0.0f) + (has[k] ? s[k] : 0.0f);
                }
            }
            tree_transform(P->post, s, nt);
            continue;
        }
        int second = -1;
        if (nt > 2) {
            for (uint32_t k = 0; k < P->n_base && k < nt; ++k) {
                s[k] = has[k] ? s[k] + TML_RDF(P->base + k) : TML_RDF(P->base + k);
                has[k] = 1;
            }
            int32_t best = -1;
            for (uint32_t k = 0; k < nt; ++k)
                if (has[k] && (best < 0 || s[k] > s[best])) best = (int32_t)k;
            labels[r] = TML_RD32(P->labels + (best < 0 ? 0 : best));
            tree_transform(P->post, s, nt);
            continue;
        }
        /* two classes */
        uint32_t n = 2;
        if (P->n_base == 2) {
            if (has[1]) {
                s[1] = TML_RDF(P->base + 1) + s[0];
                s[0] = -s[1];
            } else {
                s[1] += TML_RDF(P->base + 1);
                s[0] += TML_RDF(P->base);
            }
        } else if (P->n_base == 1) {
            s[0] += TML_RDF(P->base);
            if (!has[1]) n = 1;
        } else if (P->n_base == 0) {
            second = 3;
            if (!has[1]) n = 1;
        }
        const float pos = (n == 2 && has[1]) ? s[1] : (has[0] ? s[0] : 0.0f);
        labels[r] = tree_binary_label(P, pos, &second);
        float tmp[2] = {s[0], s[1]};
        tree_write(P, tmp, n, second, s);
    }
}
