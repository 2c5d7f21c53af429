/*
 * guard.c — the category guard: infer what kind of product the photo shows
 * from its nearest catalog neighbours, and keep results in that category
 * when the neighbours agree, so a beige sofa photo does not return a beige
 * bean bag that happens to share its colour and texture.
 *
 * The vote runs up the category tree: a neighbour in home/furniture/sofas
 * votes for "home", "home/furniture" and "home/furniture/sofas".  The
 * deepest node that holds at least the confidence share wins, so when the
 * neighbours split between sofas and armchairs the guard still restricts to
 * home/furniture rather than guessing.  Weights are a softmax over
 * similarity (temperature 0.05): the closest neighbours dominate, a long
 * tail of weak matches cannot outvote them.
 *
 * The reported confidence is the winner's share of the vote times the
 * evidence (0 when the closest neighbour is below the catalog's "close
 * match" floor, 1 from a medium-band match up): unanimous neighbours that
 * all look unlike the photo do not make a confident guess.
 *
 * Neighbours come from a search with only the policy filters (restricted,
 * retired, age) — not stock, region or price — because what the photo shows
 * does not depend on what is in stock today.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "psearch.h"

#define GUARD_TEMPERATURE 0.05

void lk_category_parent(const char *cat, char *out, size_t out_size)
{
    if (out_size == 0)
        return;
    const char *slash = cat ? strrchr(cat, '/') : NULL;
    size_t n = slash ? (size_t)(slash - cat) : 0;
    if (n >= out_size)
        n = out_size - 1;
    if (n)
        memcpy(out, cat, n);
    out[n] = '\0';
}

struct node {
    const char *path;   /* borrowed from a vote */
    size_t len;         /* prefix length of path */
    unsigned depth;
    double weight;
};

int lk_guard_infer(const struct lk_guard_vote *votes, size_t n, float min_confidence, char *out,
                   size_t out_size, float *confidence)
{
    if (out_size)
        out[0] = '\0';
    if (confidence)
        *confidence = 0.0f;
    if (!votes || n == 0 || !out || out_size == 0)
        return 0;
    float best_s = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (votes[i].category && votes[i].category[0] && votes[i].similarity > best_s)
            best_s = votes[i].similarity;
    if (best_s == -INFINITY)
        return 0;

    /* Nodes: every prefix of every voting path.  n is small (<= 64
     * neighbours x <= 16 levels), so a linear list is fine. */
    size_t cap = n * LK_CATEGORY_DEPTH_MAX, nn = 0;
    struct node *nodes = malloc(cap * sizeof *nodes);
    if (!nodes)
        return 0;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        const char *c = votes[i].category;
        if (!c || !c[0])
            continue;
        double w = exp(((double)votes[i].similarity - (double)best_s) / GUARD_TEMPERATURE);
        total += w;
        unsigned depth = 0;
        for (size_t len = 0;; len++) {
            if (c[len] != '/' && c[len] != '\0')
                continue;
            depth++;
            size_t k;
            for (k = 0; k < nn; k++)
                if (nodes[k].len == len && strncmp(nodes[k].path, c, len) == 0)
                    break;
            if (k == nn) {
                if (nn == cap || depth > LK_CATEGORY_DEPTH_MAX)
                    break;
                nodes[nn++] = (struct node){c, len, depth, 0.0};
            }
            nodes[k].weight += w;
            if (c[len] == '\0')
                break;
        }
    }
    /* Deepest confident node; else the heaviest top-level node. */
    const struct node *win = NULL;
    int confident = 0;
    for (size_t k = 0; k < nn; k++) {
        double share = nodes[k].weight / total;
        if (share + 1e-9 >= (double)min_confidence &&
            (!win || !confident || nodes[k].depth > win->depth ||
             (nodes[k].depth == win->depth && nodes[k].weight > win->weight))) {
            win = &nodes[k];
            confident = 1;
        } else if (!confident && nodes[k].depth == 1 && (!win || nodes[k].weight > win->weight)) {
            win = &nodes[k];
        }
    }
    if (win) {
        size_t len = win->len < out_size - 1 ? win->len : out_size - 1;
        memcpy(out, win->path, len);
        out[len] = '\0';
        if (confidence)
            *confidence = (float)(win->weight / total);
    }
    free(nodes);
    return confident;
}

/* ==== Query step ======================================================== */

int lk__guard(struct lk__search_ctx *c, struct lk_err *err)
{
    struct lk_filter f;
    lk_filter_default(&f);
    f.in_stock = 0;
    f.admin = c->base.admin;
    f.allow_age_restricted = c->base.allow_age_restricted;
    size_t before = c->n_cands;
    int rc = lk__search_collapse(c, c->query, &f, NULL, LK__GUARD_NEIGHBOURS, -1, err);
    if (rc != LK_OK)
        return rc;
    /* The guard's neighbours were appended with tier -1: move them out of
     * the candidate list into the vote list. */
    size_t nv = c->n_cands - before;
    c->votes = calloc(nv ? nv : 1, sizeof *c->votes);
    c->vote_info = calloc(nv ? nv : 1, sizeof *c->vote_info);
    if (!c->votes || !c->vote_info)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    c->n_votes_alloc = nv;
    for (size_t i = 0; i < nv; i++) {
        const struct lk__cand *cd = &c->cands[before + i];
        if (lk__product_info(c->eng, cd->product_id, &c->vote_info[i], NULL) != LK_OK)
            continue;
        c->votes[c->n_votes].category = c->vote_info[i].category ? c->vote_info[i].category : "";
        c->votes[c->n_votes].similarity = cd->similarity;
        c->n_votes++;
    }
    c->n_cands = before;

    if (c->category_preset)
        return LK_OK;
    char inferred[LK_CATEGORY_MAX + 1];
    float conf = 0.0f;
    float min_conf = c->eng->opts.guard_confidence > 0 ? c->eng->opts.guard_confidence
                                                        : LK_GUARD_CONFIDENCE_DEFAULT;
    lk_guard_infer(c->votes, c->n_votes, min_conf, inferred, sizeof inferred, &conf);
    /* A vote among neighbours that all look unlike the photo says little:
     * scale the share by the evidence, 0 when the best neighbour is below
     * the catalog's "close match" floor, 1 from a medium match up. */
    float best = -1.0f;
    for (size_t i = 0; i < c->n_votes; i++)
        if (c->votes[i].similarity > best)
            best = c->votes[i].similarity;
    const struct lk_bands *b = &c->g->meta.bands;
    float evidence = (best - b->floor) / (b->medium - b->floor);
    evidence = evidence < 0.0f ? 0.0f : evidence > 1.0f ? 1.0f : evidence;
    conf *= evidence;
    int confident = inferred[0] && conf >= min_conf;
    if (inferred[0]) {
        /* Reported also when the caller named a category (for information;
         * the caller's category is the one applied). */
        rc = lk_search_response_set_category(c->resp, inferred, conf);
        if (rc != LK_OK)
            return lk_err_set(err, rc, "out of memory");
    }
    if (confident && !c->category_explicit)
        memcpy(c->category, inferred, strlen(inferred) + 1);
    return LK_OK;
}
