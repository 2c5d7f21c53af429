/*
 * src/embed/cnn.c — the learned descriptor: a Keras MobileNetV2 (Sandler et
 * al. 2018) loaded from TensorFlow.js layers-model files, cut at a named layer
 * and run on XNNPACK's subgraph API, followed by global average pooling.
 *
 * Input/output contract (also in include/lookalike/embed.h):
 *   input   1 x H x W x 3 floats, NHWC, RGB, value = x/127.5 - 1 for 8-bit x
 *           (H = W = 224 for the shipped model, from its InputLayer);
 *   output  C floats: mean over height and width of the output layer's
 *           activations (C = 576 for the default layer block_13_expand_relu,
 *           a 14x14x576 tensor for a 224x224 input).
 *
 * This is the only file that knows the model format and XNNPACK.  Loading:
 *   1. model.json is parsed with cJSON; the Keras functional-model config is
 *      at modelTopology.model_config (Keras 2.2.4 export) or modelTopology
 *      itself ({class_name, config}, newer TF.js exports).
 *   2. The weights manifest is laid out: within a group, tensors sit back to
 *      back (in manifest order) in the concatenation of the group's shard
 *      files.  The group size must equal the shard sizes exactly, every
 *      shape is bounded, and every tensor is dequantised in double
 *      (value = q*scale + min, TF.js's rule) before it is rounded to float.
 *      Anything inconsistent is LK_ERR_MODEL, never a crash.
 *   3. Only the layers the output layer depends on are kept.  Fusion, so the
 *      XNNPACK graph has one node per convolution:
 *      - BatchNormalization after a convolution is folded into its weights
 *        and bias: w' = w*g, b' = (b - mean)*g + beta, g = gamma/sqrt(var+eps)
 *        (computed in double, eps from the layer config);
 *      - ReLU (max_value 6 = ReLU6, or unbounded) after a convolution or Add
 *        becomes that node's output clamp;
 *      - ZeroPadding2D before a convolution becomes the convolution's
 *        explicit padding.  Keras MobileNetV2 pads ((0,1),(0,1)) before each
 *        stride-2 convolution: that is bottom and right ONLY (top=0, left=0,
 *        bottom=1, right=1).  Padding all four sides still runs but moves the
 *        sampling grid by a pixel; the descriptor's cosine to the true one
 *        drops to about 0.94.  'same' padding is computed the TensorFlow way
 *        (the odd extra pixel goes bottom/right).
 *      Layers that cannot be fused become XNNPACK clamp / constant-pad nodes.
 *   4. Layouts: Keras stores Conv2D kernels HWIO [kh][kw][in][out]; XNNPACK
 *      wants OHWI [out][kh][kw][in], so they are transposed.  Keras
 *      DepthwiseConv2D kernels [kh][kw][in][multiplier] flatten to XNNPACK's
 *      [1][kh][kw][in*multiplier] unchanged (output channel = in*dm + m in
 *      both).
 *
 * Threading and memory: the loaded model (plan + folded float weights) is
 * immutable.  xnn_create_runtime_v2() optimises (mutates) the subgraph it is
 * given, so a subgraph cannot be shared between threads; instead each
 * workspace builds its own subgraph from the model's plan, creates a
 * single-threaded runtime (NULL pthreadpool: it runs on the calling thread)
 * and deletes the subgraph.  This XNNPACK version (Debian 2022-02) has no
 * weights cache, so every runtime holds its own packed copy of the weights
 * plus its activation arena; bench/embed prints the measured bytes per
 * workspace.  The weights passed as static data must outlive the runtimes,
 * hence the model's reference count (one per workspace).
 *
 * Precision: an FP32 model builds the float graph above; an INT8 model
 * (lk_cnn_load_opts(), LK_CNN_INT8) quantises the folded weights per output
 * channel at load (quantize.c) with activation ranges from the model's
 * calibration file, frees the float weights, and builds the same plan on
 * XNNPACK's qs8/qc8 operators (build_subgraph_int8): int8 in, int8
 * operators, int8 out, and the global average pool in C (exact integer sums).  The
 * calibrator (lk_cnn_calibrator_*) runs the FP32 plan with every tensor
 * exposed to record the ranges.
 *
 * INT8 input without float: the network wants x = p/127.5 - 1 for a pixel
 * p.  The int8 input tensor has scale 1/127.5 and zero point 0, and holds
 * q = p - 128 (one XOR per byte), i.e. x - 1/255: a constant half-step
 * offset that XNNPACK's integer zero point cannot express.  quantize_plan()
 * moves it into the bias of every convolution that reads the input
 * (b + (1/255) * sum of the filter), which makes the interior of that
 * convolution exact; only taps on the zero padding (the last row and column
 * of Conv1) keep an error of 1/255 per tap.  lk_cnn_forward() quantises a
 * float input to the same grid (round(127.5 x + 127.5) - 128), so a
 * normalised image gives bit-for-bit the int8 tensor lk_cnn_describe()
 * writes from its pixels.  With im2col for Conv1 (pick_im2col()) this
 * took the int8 descriptor from 8.17 to 7.81 ms (min thread CPU of 150
 * runs, same photo, both builds alternating on the same machine), 6 % fewer
 * instructions (callgrind).
 *
 * XNNPACK may read up to XNN_EXTRA_BYTES past the end of an input tensor, so
 * the workspace writes the input into its own padded buffer (150k floats,
 * ~30 us; the same loop rejects NaN/Inf).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>
#include <xnnpack.h>

#include "lookalike/embed.h"
#include "lookalike/image.h"
#include "pembed.h"

/* ==== Limits ==== */

/* model.json of a MobileNet is ~120 kB; anything above this is not a model. */
#define MODEL_JSON_MAX   (64u << 20)
/* Total weight bytes across all shards (MobileNetV2 float32 is ~14 MB). */
#define WEIGHTS_MAX      (1024u << 20)
/* Per-dimension bound for tensor shapes and activations (keeps every product
 * of a few dimensions far from size_t overflow). */
#define DIM_MAX          (1u << 16)
/* Layers in a model; MobileNetV2 has 162. */
#define LAYERS_MAX       100000
/* Input side used when the InputLayer leaves height/width open (None). */
#define DEFAULT_INPUT_SIDE 224

/* ==== Plan: the fused graph kept by the model ==== */

enum op_kind { OP_CONV, OP_DWCONV, OP_ADD, OP_CLAMP, OP_PAD };

/* One XNNPACK node.  Values are plan indices: value 0 is the network input,
 * value k+1 is the output of op k. */
struct plan_op {
    enum op_kind kind;
    uint32_t in0, in1;
    uint32_t h, w, c;               /* output shape */
    uint32_t kh, kw, sh, sw, dh, dw;
    uint32_t pad_t, pad_r, pad_b, pad_l;
    uint32_t cin, dm;               /* input channels, depth multiplier */
    float out_min, out_max;
    size_t filter, bias;            /* float offsets into model->weights */
    size_t qfilter, qbias, qscale;  /* int8: offsets into model->qw, ->qb, ->qs (C filter scales, then C bias scales) */
    char name[LK_CNN_LAYER_NAME_MAX + 1]; /* Keras layer whose output this is (calibration key) */
};

struct lk_cnn_model {
    atomic_int refs;                /* 1 for the caller + 1 per workspace */
    char layer[LK_CNN_LAYER_NAME_MAX + 1];
    uint32_t in_h, in_w, in_c;
    uint32_t out_value;             /* plan value pooled into the descriptor */
    size_t dim;
    struct plan_op *ops;
    size_t n_ops;
    float *weights;                 /* folded, XNNPACK layout; static data of every runtime (FP32) */
    size_t n_weights;
    uint64_t model_id;              /* FNV-1a 64 of model.json and the shards (calibration key) */
    enum lk_cnn_precision precision;
    /* INT8 only (static data of every int8 runtime, like `weights`): */
    int8_t *qw;                     /* per-channel int8 filters, XNNPACK layout */
    int32_t *qb;                    /* int32 biases */
    float *qs;                      /* per-channel filter and bias scales */
    float *vscale;                  /* per plan value: activation scale ... */
    int32_t *vzp;                   /* ... and zero point */
    uint32_t im2col;                /* 1 + the op whose patches lk_cnn_forward() gathers (im2col()), or 0 */
};

struct lk_cnn_workspace {
    struct lk_cnn_model *model;
    xnn_runtime_t runtime;
    void *input;                    /* the runtime's input (input_bytes()) + XNN_EXTRA_BYTES */
    void *output;                   /* FP32: dim pooled floats; INT8: the out_h*out_w*dim int8 layer; + XNN_EXTRA_BYTES */
    void *scratch;                  /* FP32: the normalised image (floats); INT8 with im2col: the int8 image */
    int64_t *sums;                  /* INT8: dim per-channel sums of the pool */
};

/* ==== Small helpers ==== */

/* Pixels of the output layer's feature map (pooled into the descriptor). */
static size_t out_pixels(const struct lk_cnn_model *m)
{
    const struct plan_op *last = &m->ops[m->out_value - 1];
    return (size_t)last->h * last->w;
}

/* Bytes of the runtime's external input: the image (in_h*in_w*in_c floats
 * or int8), or with im2col the first convolution's patches (out_h*out_w*
 * kh*kw*in_c int8). */
static size_t input_bytes(const struct lk_cnn_model *m)
{
    if (m->im2col) {
        const struct plan_op *op = &m->ops[m->im2col - 1];
        return (size_t)op->h * op->w * op->kh * op->kw * op->cin;
    }
    return (size_t)m->in_h * m->in_w * m->in_c * (m->precision == LK_CNN_INT8 ? 1 : sizeof(float));
}

static pthread_once_t xnn_once = PTHREAD_ONCE_INIT;
static enum xnn_status xnn_init_status = xnn_status_uninitialized;

static void xnn_init_once(void)
{
    xnn_init_status = xnn_initialize(NULL);
}

static int xnn_ready(struct lk_err *err)
{
    pthread_once(&xnn_once, xnn_init_once);
    if (xnn_init_status != xnn_status_success)
        return lk_err_set(err, LK_ERR_MODEL, "XNNPACK initialisation failed (status %d)", (int)xnn_init_status);
    return LK_OK;
}

/* Read a whole file into a malloc'd buffer (NUL-terminated for JSON use).
 * Files larger than `limit` bytes are rejected with LK_ERR_MODEL. */
static int read_file(const char *path, size_t limit, char **out, size_t *len, struct lk_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lk_err_set(err, LK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lk_err_set(err, LK_ERR_IO, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > limit) {
        fclose(f);
        return lk_err_set(err, LK_ERR_MODEL, "%s is %lld bytes, over the %zu-byte limit", path,
                          (long long)st.st_size, limit);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t got = fread(buf, 1, n, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != n || rerr) {
        free(buf);
        return lk_err_set(err, LK_ERR_IO, "short read on %s", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return LK_OK;
}

/* JSON number that is a whole number in [lo, hi]. */
static bool json_uint(const cJSON *j, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double v = j->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/* A Keras pair such as kernel_size [3,3] or strides [2,2] (a bare number
 * means both). */
static bool json_pair(const cJSON *j, uint32_t lo, uint32_t hi, uint32_t out[2])
{
    if (cJSON_IsNumber(j))
        return json_uint(j, lo, hi, &out[0]) && json_uint(j, lo, hi, &out[1]);
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2)
        return false;
    return json_uint(cJSON_GetArrayItem(j, 0), lo, hi, &out[0]) &&
           json_uint(cJSON_GetArrayItem(j, 1), lo, hi, &out[1]);
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* ==== Weights manifest ==== */

enum wdtype { W_F32, W_U8, W_U16, W_F16, W_I32, W_OTHER };

struct weight {
    const char *name;               /* borrowed from the cJSON tree */
    uint32_t ndim, shape[4];
    size_t count;                   /* elements */
    enum wdtype stored;             /* element type in the shard */
    double qmin, qscale;            /* for W_U8 / W_U16 */
    const uint8_t *data;            /* into the group's concatenated shards */
};

struct manifest {
    struct weight *w;
    size_t n;
    uint8_t **blobs;                /* one concatenated buffer per group */
    size_t n_blobs;
    uint64_t hash;                  /* FNV-1a 64 over the blobs, continued from model.json's */
};

/* FNV-1a 64-bit (Fowler/Noll/Vo): identifies the model a calibration file
 * belongs to.  Not cryptographic; a mismatch guard, not a defence. */
static uint64_t fnv1a64(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define FNV1A64_INIT 0xcbf29ce484222325ull

static void manifest_free(struct manifest *mf)
{
    for (size_t i = 0; i < mf->n_blobs; i++)
        free(mf->blobs[i]);
    free(mf->blobs);
    free(mf->w);
    memset(mf, 0, sizeof *mf);
}

static size_t wdtype_bytes(enum wdtype t)
{
    switch (t) {
    case W_U8: return 1;
    case W_U16: case W_F16: return 2;
    default: return 4;
    }
}

/* Shard names must be plain file names inside the model directory. */
static bool safe_shard_name(const char *s)
{
    return s && *s && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strlen(s) < 256;
}

/* Parse one manifest entry's dtype/shape/quantization into *w (data unset). */
static int parse_weight(const cJSON *jw, struct weight *w, struct lk_err *err)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(jw, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(jw, "shape");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(jw, "dtype");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(jw, "quantization");
    if (!cJSON_IsString(name) || !cJSON_IsArray(shape) || !cJSON_IsString(dtype))
        return lk_err_set(err, LK_ERR_MODEL, "weights manifest entry without name/shape/dtype");
    w->name = name->valuestring;
    int nd = cJSON_GetArraySize(shape);
    if (nd > 4)
        return lk_err_set(err, LK_ERR_MODEL, "weight %s has %d dimensions (max 4)", w->name, nd);
    w->ndim = (uint32_t)nd;
    w->count = 1;
    for (int i = 0; i < nd; i++) {
        if (!json_uint(cJSON_GetArrayItem(shape, i), 0, DIM_MAX, &w->shape[i]))
            return lk_err_set(err, LK_ERR_MODEL, "weight %s has a bad shape", w->name);
        w->count *= w->shape[i];
        if (w->count > WEIGHTS_MAX)
            return lk_err_set(err, LK_ERR_MODEL, "weight %s is too large", w->name);
    }
    const char *dt = dtype->valuestring;
    w->stored = !strcmp(dt, "float32") ? W_F32 : !strcmp(dt, "int32") ? W_I32 : W_OTHER;
    if (q) {
        const cJSON *qd = cJSON_GetObjectItemCaseSensitive(q, "dtype");
        if (!cJSON_IsString(qd) || strcmp(dt, "float32") != 0)
            return lk_err_set(err, LK_ERR_MODEL, "weight %s: bad quantization block", w->name);
        if (!strcmp(qd->valuestring, "float16")) {
            w->stored = W_F16;
        } else {
            const cJSON *mn = cJSON_GetObjectItemCaseSensitive(q, "min");
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(q, "scale");
            w->stored = !strcmp(qd->valuestring, "uint8") ? W_U8 : !strcmp(qd->valuestring, "uint16") ? W_U16 : W_OTHER;
            if (w->stored == W_OTHER || !cJSON_IsNumber(mn) || !cJSON_IsNumber(sc) ||
                !isfinite(mn->valuedouble) || !isfinite(sc->valuedouble))
                return lk_err_set(err, LK_ERR_MODEL, "weight %s: unsupported quantization", w->name);
            w->qmin = mn->valuedouble;
            w->qscale = sc->valuedouble;
        }
    }
    if (w->stored == W_OTHER)
        return lk_err_set(err, LK_ERR_MODEL, "weight %s: unsupported dtype %s", w->name, dt);
    return LK_OK;
}

/* Read every group's shards and place every tensor.  Sizes must add up
 * exactly: a shard that is too short or too long is LK_ERR_MODEL. */
static int load_manifest(const char *dir, const cJSON *jm, struct manifest *mf, struct lk_err *err)
{
    if (!cJSON_IsArray(jm) || cJSON_GetArraySize(jm) < 1)
        return lk_err_set(err, LK_ERR_MODEL, "model.json: weightsManifest missing or empty");
    size_t n_total = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, jm) {
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(g, "weights");
        if (!cJSON_IsArray(ws))
            return lk_err_set(err, LK_ERR_MODEL, "model.json: weights group without a weights array");
        n_total += (size_t)cJSON_GetArraySize(ws);
    }
    size_t n_groups = (size_t)cJSON_GetArraySize(jm);
    mf->w = calloc(n_total ? n_total : 1, sizeof *mf->w);
    mf->blobs = calloc(n_groups, sizeof *mf->blobs);
    if (!mf->w || !mf->blobs)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory for the weights manifest");

    size_t grand_total = 0;
    cJSON_ArrayForEach(g, jm) {
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(g, "paths");
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(g, "weights");
        if (!cJSON_IsArray(paths) || cJSON_GetArraySize(paths) < 1)
            return lk_err_set(err, LK_ERR_MODEL, "model.json: weights group without paths");
        /* Lay out the group first: its total byte size. */
        size_t first = mf->n, group_bytes = 0;
        const cJSON *jw;
        cJSON_ArrayForEach(jw, ws) {
            struct weight *w = &mf->w[mf->n];
            int rc = parse_weight(jw, w, err);
            if (rc)
                return rc;
            group_bytes += w->count * wdtype_bytes(w->stored);
            if (group_bytes > WEIGHTS_MAX)
                return lk_err_set(err, LK_ERR_MODEL, "weights larger than %u bytes", WEIGHTS_MAX);
            mf->n++;
        }
        /* Concatenate the shards. */
        uint8_t *blob = malloc(group_bytes ? group_bytes : 1);
        if (!blob)
            return lk_err_set(err, LK_ERR_NOMEM, "out of memory for weights");
        mf->blobs[mf->n_blobs++] = blob;
        size_t have = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, paths) {
            if (!cJSON_IsString(p) || !safe_shard_name(p->valuestring))
                return lk_err_set(err, LK_ERR_MODEL, "model.json: bad shard path");
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, p->valuestring);
            char *buf;
            size_t len;
            int rc = read_file(path, WEIGHTS_MAX, &buf, &len, err);
            if (rc == LK_ERR_IO) {
                char why[LK_ERR_MSG_MAX];
                snprintf(why, sizeof why, "%s", err ? err->msg : "");
                return lk_err_set(err, LK_ERR_MODEL, "weights shard: %s", why);
            }
            if (rc)
                return rc;
            if (len > group_bytes - have) {
                free(buf);
                return lk_err_set(err, LK_ERR_MODEL, "shard %s is longer than the manifest says (%zu bytes expected in total)",
                                  p->valuestring, group_bytes);
            }
            memcpy(blob + have, buf, len);
            have += len;
            free(buf);
        }
        if (have != group_bytes)
            return lk_err_set(err, LK_ERR_MODEL, "weight shards hold %zu bytes, the manifest needs %zu (truncated?)",
                              have, group_bytes);
        mf->hash = fnv1a64(mf->hash, blob, group_bytes);
        size_t off = 0;
        for (size_t i = first; i < mf->n; i++) {
            mf->w[i].data = blob + off;
            off += mf->w[i].count * wdtype_bytes(mf->w[i].stored);
        }
        grand_total += group_bytes;
        if (grand_total > WEIGHTS_MAX)
            return lk_err_set(err, LK_ERR_MODEL, "weights larger than %u bytes", WEIGHTS_MAX);
    }
    return LK_OK;
}

/* Find "<layer>/<param>" (exact, or as a suffix after a scope '/'). */
static const struct weight *find_weight(const struct manifest *mf, const char *layer, const char *param)
{
    char want[LK_CNN_LAYER_NAME_MAX + 64];
    int n = snprintf(want, sizeof want, "%s/%s", layer, param);
    if (n < 0 || (size_t)n >= sizeof want)
        return NULL;
    const struct weight *suffix = NULL;
    for (size_t i = 0; i < mf->n; i++) {
        const char *s = mf->w[i].name;
        if (!strcmp(s, want))
            return &mf->w[i];
        size_t ls = strlen(s);
        if (ls > (size_t)n && s[ls - (size_t)n - 1] == '/' && !strcmp(s + ls - n, want))
            suffix = &mf->w[i];
    }
    return suffix;
}

/* Dequantise weight `layer/param` of exactly the given shape into a new
 * double array (double so the BatchNorm fold is exact before rounding). */
static int get_weight(const struct manifest *mf, const char *layer, const char *param, uint32_t ndim,
                      const uint32_t *shape, double **out, struct lk_err *err)
{
    const struct weight *w = find_weight(mf, layer, param);
    if (!w)
        return lk_err_set(err, LK_ERR_MODEL, "weight %s/%s not in the manifest", layer, param);
    bool ok = w->ndim == ndim;
    for (uint32_t i = 0; ok && i < ndim; i++)
        ok = w->shape[i] == shape[i];
    if (!ok)
        return lk_err_set(err, LK_ERR_MODEL, "weight %s has the wrong shape for layer %s", w->name, layer);
    if (w->stored == W_I32)
        return lk_err_set(err, LK_ERR_MODEL, "weight %s is int32, expected float", w->name);
    double *v = malloc((w->count ? w->count : 1) * sizeof *v);
    if (!v)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory for weight %s", w->name);
    const uint8_t *d = w->data;
    for (size_t i = 0; i < w->count; i++) {
        double x;
        switch (w->stored) {
        case W_U8: x = d[i] * w->qscale + w->qmin; break;
        case W_U16: x = (d[2 * i] | (uint16_t)d[2 * i + 1] << 8) * w->qscale + w->qmin; break;
        case W_F16: x = half_to_double((uint16_t)(d[2 * i] | d[2 * i + 1] << 8)); break;
        default: {
            uint32_t u = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 |
                         (uint32_t)d[4 * i + 3] << 24;
            float f;
            memcpy(&f, &u, sizeof f);
            x = f;
        }
        }
        if (!isfinite(x)) {
            free(v);
            return lk_err_set(err, LK_ERR_MODEL, "weight %s holds a non-finite value", w->name);
        }
        v[i] = x;
    }
    *out = v;
    return LK_OK;
}

/* ==== Keras graph: parse, keep what the output needs, fuse ==== */

enum kind { K_INPUT, K_PAD, K_CONV, K_DWCONV, K_BN, K_RELU, K_ADD, K_IDENTITY, K_UNSUPPORTED };

struct knode {
    enum kind kind;
    const char *name;               /* borrowed from the cJSON tree */
    const char *class_name;
    const cJSON *config;
    int in[2], n_in;
    bool needed;
    int consumers;                  /* among needed layers, +1 if it is the output */
    int alias;                      /* node producing this layer's output after fusion */
    bool live;                      /* becomes an XNNPACK node */
    uint32_t h, w, c;
    /* conv / depthwise */
    uint32_t kh, kw, sh, sw, dh, dw, cin, dm;
    uint32_t pad_t, pad_r, pad_b, pad_l;
    bool activated;                 /* output clamp already set: BN can no longer fold */
    float out_min, out_max;
    double *kernel, *bias;          /* Keras layout, folded in place */
    uint32_t value;                 /* plan value id once emitted */
    const char *out_name;           /* last fused layer whose output this node produces */
};

struct graph {
    struct knode *n;
    size_t count;
};

static void graph_free(struct graph *g)
{
    for (size_t i = 0; i < g->count; i++) {
        free(g->n[i].kernel);
        free(g->n[i].bias);
    }
    free(g->n);
}

static int find_node(const struct graph *g, const char *name)
{
    for (size_t i = 0; i < g->count; i++)
        if (!strcmp(g->n[i].name, name))
            return (int)i;
    return -1;
}

static enum kind classify(const char *cls, const cJSON *cfg)
{
    if (!strcmp(cls, "InputLayer")) return K_INPUT;
    if (!strcmp(cls, "ZeroPadding2D")) return K_PAD;
    if (!strcmp(cls, "Conv2D")) return K_CONV;
    if (!strcmp(cls, "DepthwiseConv2D")) return K_DWCONV;
    if (!strcmp(cls, "BatchNormalization")) return K_BN;
    if (!strcmp(cls, "ReLU")) return K_RELU;
    if (!strcmp(cls, "Add")) return K_ADD;
    if (!strcmp(cls, "Dropout")) return K_IDENTITY;     /* identity at inference */
    if (!strcmp(cls, "Activation")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(cfg, "activation");
        if (cJSON_IsString(a) && (!strcmp(a->valuestring, "relu") || !strcmp(a->valuestring, "relu6")))
            return K_RELU;
        if (cJSON_IsString(a) && !strcmp(a->valuestring, "linear"))
            return K_IDENTITY;
    }
    return K_UNSUPPORTED;
}

/* Parse the layer list: names, classes and inbound layers (single inbound
 * node per layer, i.e. no shared layers). */
static int parse_layers(const cJSON *layers, struct graph *g, struct lk_err *err)
{
    if (!cJSON_IsArray(layers))
        return lk_err_set(err, LK_ERR_MODEL, "model.json: model config has no layers array");
    int nl = cJSON_GetArraySize(layers);
    if (nl < 1 || nl > LAYERS_MAX)
        return lk_err_set(err, LK_ERR_MODEL, "model.json: %d layers", nl);
    g->n = calloc((size_t)nl, sizeof *g->n);
    if (!g->n)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory for layers");
    const cJSON *L;
    cJSON_ArrayForEach(L, layers) {
        struct knode *k = &g->n[g->count];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(L, "name");
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(L, "class_name");
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(L, "config");
        const cJSON *inb = cJSON_GetObjectItemCaseSensitive(L, "inbound_nodes");
        if (!cJSON_IsString(name) || !cJSON_IsString(cls) || !cJSON_IsObject(cfg) || !cJSON_IsArray(inb))
            return lk_err_set(err, LK_ERR_MODEL, "model.json: layer %zu lacks name/class_name/config/inbound_nodes "
                              "(only functional models are supported)", g->count);
        if (strlen(name->valuestring) > LK_CNN_LAYER_NAME_MAX)
            return lk_err_set(err, LK_ERR_MODEL, "model.json: layer name too long");
        k->name = name->valuestring;
        k->class_name = cls->valuestring;
        k->config = cfg;
        k->kind = classify(cls->valuestring, cfg);
        k->alias = (int)g->count;
        k->out_min = -INFINITY;
        k->out_max = INFINITY;
        int nnodes = cJSON_GetArraySize(inb);
        if (nnodes > 1)
            return lk_err_set(err, LK_ERR_MODEL, "layer %s is shared (%d inbound nodes): unsupported", k->name, nnodes);
        if (nnodes == 1) {
            const cJSON *node = cJSON_GetArrayItem(inb, 0), *e;
            if (!cJSON_IsArray(node))
                return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad inbound_nodes", k->name);
            cJSON_ArrayForEach(e, node) {
                const cJSON *src = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 0) : NULL;
                if (!cJSON_IsString(src))
                    return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad inbound_nodes", k->name);
                int idx = find_node(g, src->valuestring);  /* Keras lists layers in topological order */
                if (idx < 0)
                    return lk_err_set(err, LK_ERR_MODEL, "layer %s: input %s is not an earlier layer", k->name,
                                      src->valuestring);
                if (k->n_in == 2)
                    return lk_err_set(err, LK_ERR_MODEL, "layer %s has more than 2 inputs: unsupported", k->name);
                k->in[k->n_in++] = idx;
            }
        }
        if (find_node(g, k->name) >= 0)
            return lk_err_set(err, LK_ERR_MODEL, "model.json: duplicate layer name %s", k->name);
        g->count++;
    }
    return LK_OK;
}

/* Follow fusion aliases to the node that now produces layer i's output. */
static int resolve(const struct graph *g, int i)
{
    while (g->n[i].alias != i)
        i = g->n[i].alias;
    return i;
}

/* 'same'/'valid' output size and TensorFlow 'same' padding split. */
static int conv_geometry(struct knode *k, const struct knode *in, bool same, struct lk_err *err)
{
    uint32_t ekh = k->dh * (k->kh - 1) + 1, ekw = k->dw * (k->kw - 1) + 1;
    if (same) {
        uint32_t oh = (in->h + k->sh - 1) / k->sh, ow = (in->w + k->sw - 1) / k->sw;
        int64_t th = (int64_t)(oh - 1) * k->sh + ekh - in->h, tw = (int64_t)(ow - 1) * k->sw + ekw - in->w;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        k->pad_t += (uint32_t)th / 2;
        k->pad_b += (uint32_t)(th - th / 2);
        k->pad_l += (uint32_t)tw / 2;
        k->pad_r += (uint32_t)(tw - tw / 2);
    }
    uint64_t ph = (uint64_t)in->h + k->pad_t + k->pad_b, pw = (uint64_t)in->w + k->pad_l + k->pad_r;
    if (ph < ekh || pw < ekw)
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: kernel larger than its input", k->name);
    k->h = (uint32_t)((ph - ekh) / k->sh + 1);
    k->w = (uint32_t)((pw - ekw) / k->sw + 1);
    return LK_OK;
}

/* Conv2D / DepthwiseConv2D: geometry, activation, kernel and bias. */
static int build_conv(struct graph *g, int i, const struct manifest *mf, struct lk_err *err)
{
    struct knode *k = &g->n[i];
    const cJSON *cfg = k->config;
    bool dw = k->kind == K_DWCONV;
    uint32_t ks[2], st[2] = {1, 1}, dil[2] = {1, 1};
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(cfg, "padding");
    const cJSON *df = cJSON_GetObjectItemCaseSensitive(cfg, "data_format");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "activation");
    const cJSON *ub = cJSON_GetObjectItemCaseSensitive(cfg, "use_bias");
    const cJSON *jst = cJSON_GetObjectItemCaseSensitive(cfg, "strides");
    const cJSON *jdil = cJSON_GetObjectItemCaseSensitive(cfg, "dilation_rate");
    if (!json_pair(cJSON_GetObjectItemCaseSensitive(cfg, "kernel_size"), 1, 64, ks) ||
        (jst && !json_pair(jst, 1, 64, st)) || (jdil && !json_pair(jdil, 1, 64, dil)) ||
        !cJSON_IsString(pad) || (strcmp(pad->valuestring, "same") && strcmp(pad->valuestring, "valid")))
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad kernel_size/strides/dilation_rate/padding", k->name);
    if (df && !(cJSON_IsString(df) && !strcmp(df->valuestring, "channels_last")))
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: only channels_last is supported", k->name);
    if ((st[0] > 1 || st[1] > 1) && (dil[0] > 1 || dil[1] > 1))
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: strides and dilation together", k->name);
    k->kh = ks[0], k->kw = ks[1], k->sh = st[0], k->sw = st[1], k->dh = dil[0], k->dw = dil[1];

    /* Input, absorbing a ZeroPadding2D that feeds only this convolution. */
    int src = resolve(g, k->in[0]);
    struct knode *in = &g->n[src];
    if (in->kind == K_PAD && in->live && in->consumers == 1) {
        k->pad_t = in->pad_t, k->pad_b = in->pad_b, k->pad_l = in->pad_l, k->pad_r = in->pad_r;
        in->live = false;
        src = resolve(g, in->in[0]);
        in = &g->n[src];
    }
    k->in[0] = src;
    k->cin = in->c;
    int rc = conv_geometry(k, in, !strcmp(pad->valuestring, "same"), err);
    if (rc)
        return rc;

    uint32_t cout;
    if (dw) {
        uint32_t dm = 1;
        const cJSON *jdm = cJSON_GetObjectItemCaseSensitive(cfg, "depth_multiplier");
        if (jdm && !json_uint(jdm, 1, 1024, &dm))
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad depth_multiplier", k->name);
        k->dm = dm;
        cout = k->cin * dm;
        uint32_t shp[4] = {k->kh, k->kw, k->cin, dm};
        rc = get_weight(mf, k->name, "depthwise_kernel", 4, shp, &k->kernel, err);
    } else {
        if (!json_uint(cJSON_GetObjectItemCaseSensitive(cfg, "filters"), 1, DIM_MAX, &cout))
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad filters", k->name);
        const cJSON *groups = cJSON_GetObjectItemCaseSensitive(cfg, "groups");
        if (groups && !(cJSON_IsNumber(groups) && groups->valuedouble == 1))
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: grouped convolution unsupported", k->name);
        uint32_t shp[4] = {k->kh, k->kw, k->cin, cout};
        rc = get_weight(mf, k->name, "kernel", 4, shp, &k->kernel, err);
    }
    if (rc)
        return rc;
    k->c = cout;
    if (cJSON_IsTrue(ub)) {
        rc = get_weight(mf, k->name, "bias", 1, &cout, &k->bias, err);
        if (rc)
            return rc;
    } else {
        k->bias = calloc(cout, sizeof *k->bias);
        if (!k->bias)
            return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    }
    if (cJSON_IsString(act) && !strcmp(act->valuestring, "relu")) {
        k->out_min = 0.0f, k->activated = true;
    } else if (cJSON_IsString(act) && !strcmp(act->valuestring, "relu6")) {
        k->out_min = 0.0f, k->out_max = 6.0f, k->activated = true;
    } else if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "linear"))) {
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: unsupported activation", k->name);
    }
    k->live = true;
    return LK_OK;
}

/* BatchNormalization folded into the convolution that feeds only it. */
static int fold_bn(struct graph *g, int i, const struct manifest *mf, struct lk_err *err)
{
    struct knode *k = &g->n[i];
    int src = resolve(g, k->in[0]);
    struct knode *conv = &g->n[src];
    if (!((conv->kind == K_CONV || conv->kind == K_DWCONV) && conv->consumers == 1 && !conv->activated))
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: BatchNormalization is only supported directly after a "
                          "convolution with no other consumer", k->name);
    const cJSON *cfg = k->config;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "epsilon");
    const cJSON *axis = cJSON_GetObjectItemCaseSensitive(cfg, "axis");
    const cJSON *center = cJSON_GetObjectItemCaseSensitive(cfg, "center");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(cfg, "scale");
    if (!cJSON_IsNumber(eps) || !(eps->valuedouble >= 0) || !isfinite(eps->valuedouble))
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad epsilon", k->name);
    if (axis && !(cJSON_IsNumber(axis) && (axis->valuedouble == -1 || axis->valuedouble == 3)))
        return lk_err_set(err, LK_ERR_MODEL, "layer %s: only channel-axis BatchNormalization", k->name);
    uint32_t c = conv->c;
    double *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL;
    int rc = get_weight(mf, k->name, "moving_mean", 1, &c, &mean, err);
    if (!rc)
        rc = get_weight(mf, k->name, "moving_variance", 1, &c, &var, err);
    if (!rc && !cJSON_IsFalse(scale))
        rc = get_weight(mf, k->name, "gamma", 1, &c, &gamma, err);
    if (!rc && !cJSON_IsFalse(center))
        rc = get_weight(mf, k->name, "beta", 1, &c, &beta, err);
    if (!rc) {
        /* Output channel o of the kernel is the fastest index in both Keras
         * layouts: HWIO (Conv2D) and HW[in][dm] flattened (depthwise). */
        size_t per = (size_t)conv->kh * conv->kw * (conv->kind == K_CONV ? conv->cin : 1);
        for (uint32_t o = 0; o < c; o++) {
            if (!(var[o] + eps->valuedouble > 0)) {
                rc = lk_err_set(err, LK_ERR_MODEL, "layer %s: variance + epsilon <= 0", k->name);
                break;
            }
            double s = (gamma ? gamma[o] : 1.0) / sqrt(var[o] + eps->valuedouble);
            for (size_t j = 0; j < per; j++)
                conv->kernel[j * c + o] *= s;
            conv->bias[o] = (conv->bias[o] - mean[o]) * s + (beta ? beta[o] : 0.0);
        }
    }
    free(gamma), free(beta), free(mean), free(var);
    if (rc)
        return rc;
    conv->consumers = k->consumers;
    k->alias = src;
    return LK_OK;
}

/* ReLU(max_value, negative_slope 0, threshold 0) or Activation(relu/relu6):
 * a clamp, fused into the producing convolution/Add when it is the only
 * consumer. */
static int build_relu(struct graph *g, int i, struct lk_err *err)
{
    struct knode *k = &g->n[i];
    float hi = INFINITY;
    if (!strcmp(k->class_name, "ReLU")) {
        const cJSON *mv = cJSON_GetObjectItemCaseSensitive(k->config, "max_value");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(k->config, "negative_slope");
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(k->config, "threshold");
        if (mv && !cJSON_IsNull(mv)) {
            if (!cJSON_IsNumber(mv) || !(mv->valuedouble > 0))
                return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad max_value", k->name);
            hi = (float)mv->valuedouble;
        }
        if ((ns && !(cJSON_IsNumber(ns) && ns->valuedouble == 0)) || (th && !(cJSON_IsNumber(th) && th->valuedouble == 0)))
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: leaky/thresholded ReLU unsupported", k->name);
    } else {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(k->config, "activation");
        if (!strcmp(a->valuestring, "relu6"))
            hi = 6.0f;
    }
    int src = resolve(g, k->in[0]);
    struct knode *in = &g->n[src];
    if ((in->kind == K_CONV || in->kind == K_DWCONV || in->kind == K_ADD) && in->consumers == 1 && in->live) {
        in->out_min = fmaxf(in->out_min, 0.0f);
        in->out_max = fminf(in->out_max, hi);
        in->activated = true;
        in->consumers = k->consumers;
        k->alias = src;
        return LK_OK;
    }
    k->in[0] = src;
    k->h = in->h, k->w = in->w, k->c = in->c;
    k->out_min = 0.0f, k->out_max = hi;
    k->live = true;
    return LK_OK;
}

/* Shape-check and fuse every needed layer, in (topological) file order. */
static int build_graph(struct graph *g, int out_idx, const struct manifest *mf, struct lk_err *err)
{
    /* Mark what the output depends on (inputs always precede their users). */
    g->n[out_idx].needed = true;
    for (int i = out_idx; i >= 0; i--)
        if (g->n[i].needed)
            for (int j = 0; j < g->n[i].n_in; j++)
                g->n[g->n[i].in[j]].needed = true;
    for (int i = 0; i <= out_idx; i++)
        if (g->n[i].needed)
            for (int j = 0; j < g->n[i].n_in; j++)
                g->n[g->n[i].in[j]].consumers++;
    g->n[out_idx].consumers++;  /* the descriptor reads it */

    int n_inputs = 0;
    for (int i = 0; i <= out_idx; i++) {
        struct knode *k = &g->n[i];
        if (!k->needed)
            continue;
        int rc = LK_OK;
        int need_in = k->kind == K_INPUT ? 0 : k->kind == K_ADD ? 2 : 1;
        if (k->kind == K_UNSUPPORTED)
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: class %s is not supported", k->name, k->class_name);
        if (k->n_in != need_in)
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: expected %d inputs, found %d", k->name, need_in, k->n_in);
        switch (k->kind) {
        case K_INPUT: {
            const cJSON *shp = cJSON_GetObjectItemCaseSensitive(k->config, "batch_input_shape");
            if (n_inputs++ || !cJSON_IsArray(shp) || cJSON_GetArraySize(shp) != 4)
                return lk_err_set(err, LK_ERR_MODEL, "layer %s: need one NHWC input", k->name);
            uint32_t d[3];
            for (int j = 0; j < 3; j++) {
                const cJSON *e = cJSON_GetArrayItem(shp, j + 1);
                if (cJSON_IsNull(e) && j < 2)
                    d[j] = DEFAULT_INPUT_SIDE;
                else if (!json_uint(e, 1, j < 2 ? 4096 : 4, &d[j]))
                    return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad input shape", k->name);
            }
            if (d[2] != 3)
                return lk_err_set(err, LK_ERR_MODEL, "layer %s: input must have 3 channels (RGB)", k->name);
            k->h = d[0], k->w = d[1], k->c = d[2];
            k->live = true;  /* the external input value */
            break;
        }
        case K_PAD: {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(k->config, "padding");
            uint32_t tb[2], lr[2], v;
            if (json_uint(p, 0, 1024, &v)) {
                tb[0] = tb[1] = lr[0] = lr[1] = v;
            } else if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 2 &&
                       json_pair(cJSON_GetArrayItem(p, 0), 0, 1024, tb) &&
                       json_pair(cJSON_GetArrayItem(p, 1), 0, 1024, lr)) {
                /* ((top, bottom), (left, right)); a bare pair (sym_h, sym_w)
                 * was read by json_pair as (h,h) and (w,w). */
            } else {
                return lk_err_set(err, LK_ERR_MODEL, "layer %s: bad padding", k->name);
            }
            const struct knode *in = &g->n[resolve(g, k->in[0])];
            k->in[0] = resolve(g, k->in[0]);
            k->pad_t = tb[0], k->pad_b = tb[1], k->pad_l = lr[0], k->pad_r = lr[1];
            k->h = in->h + tb[0] + tb[1], k->w = in->w + lr[0] + lr[1], k->c = in->c;
            k->live = true;  /* unless a convolution absorbs it */
            break;
        }
        case K_CONV:
        case K_DWCONV:
            rc = build_conv(g, i, mf, err);
            break;
        case K_BN:
            rc = fold_bn(g, i, mf, err);
            break;
        case K_RELU:
            rc = build_relu(g, i, err);
            break;
        case K_IDENTITY: {
            int src = resolve(g, k->in[0]);
            g->n[src].consumers += k->consumers - 1;
            k->alias = src;
            break;
        }
        case K_ADD: {
            int a = resolve(g, k->in[0]), b = resolve(g, k->in[1]);
            const struct knode *x = &g->n[a], *y = &g->n[b];
            if (x->h != y->h || x->w != y->w || x->c != y->c)
                return lk_err_set(err, LK_ERR_MODEL, "layer %s: inputs of different shapes", k->name);
            k->in[0] = a, k->in[1] = b;
            k->h = x->h, k->w = x->w, k->c = x->c;
            k->live = true;
            break;
        }
        default:
            return lk_err_set(err, LK_ERR_INTERNAL, "layer %s: unhandled kind", k->name);
        }
        if (rc)
            return rc;
        if (k->alias == i && (k->h == 0 || k->w == 0 || k->c == 0 || k->h > DIM_MAX || k->w > DIM_MAX ||
                              k->c > DIM_MAX || (uint64_t)k->h * k->w * k->c > (1u << 28)))
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: output shape %ux%ux%u out of range", k->name, k->h, k->w,
                              k->c);
    }
    if (n_inputs != 1)
        return lk_err_set(err, LK_ERR_MODEL, "the output layer does not depend on an InputLayer");
    /* Name each producing node after the last layer fused into it (e.g. the
     * convolution block_1_project yields block_1_project_BN): the Keras name
     * of the tensor, the key of its calibrated range. */
    for (int i = 0; i <= out_idx; i++)
        if (g->n[i].needed)
            g->n[resolve(g, i)].out_name = g->n[i].name;
    return LK_OK;
}

/* Emit the plan: live nodes in order, folded weights in XNNPACK layout. */
static int emit_plan(struct graph *g, int out_idx, struct lk_cnn_model *m, struct lk_err *err)
{
    size_t n_ops = 0, n_w = 0;
    for (size_t i = 0; i < g->count; i++) {
        struct knode *k = &g->n[i];
        if (!k->needed || !k->live || k->kind == K_INPUT)
            continue;
        n_ops++;
        if (k->kind == K_CONV || k->kind == K_DWCONV)
            n_w += (size_t)k->kh * k->kw * (k->kind == K_CONV ? k->cin : 1) * k->c + k->c;
    }
    m->ops = calloc(n_ops ? n_ops : 1, sizeof *m->ops);
    m->weights = malloc((n_w ? n_w : 1) * sizeof *m->weights);
    if (!m->ops || !m->weights)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory for the model plan");
    size_t wo = 0;
    for (size_t i = 0; i < g->count; i++) {
        struct knode *k = &g->n[i];
        if (!k->needed || !k->live)
            continue;
        if (k->kind == K_INPUT) {
            k->value = 0;
            m->in_h = k->h, m->in_w = k->w, m->in_c = k->c;
            continue;
        }
        struct plan_op *op = &m->ops[m->n_ops];
        k->value = (uint32_t)(++m->n_ops);
        op->in0 = g->n[k->in[0]].value;
        op->in1 = k->kind == K_ADD ? g->n[k->in[1]].value : 0;
        op->h = k->h, op->w = k->w, op->c = k->c;
        op->out_min = k->out_min, op->out_max = k->out_max;
        op->pad_t = k->pad_t, op->pad_r = k->pad_r, op->pad_b = k->pad_b, op->pad_l = k->pad_l;
        snprintf(op->name, sizeof op->name, "%s", k->out_name ? k->out_name : k->name);
        switch (k->kind) {
        case K_CONV:
        case K_DWCONV: {
            op->kind = k->kind == K_CONV ? OP_CONV : OP_DWCONV;
            op->kh = k->kh, op->kw = k->kw, op->sh = k->sh, op->sw = k->sw, op->dh = k->dh, op->dw = k->dw;
            op->cin = k->cin, op->dm = k->dm;
            op->filter = wo;
            if (k->kind == K_CONV) {
                /* HWIO -> OHWI */
                size_t hw = (size_t)k->kh * k->kw;
                for (uint32_t o = 0; o < k->c; o++)
                    for (size_t p = 0; p < hw; p++)
                        for (uint32_t ci = 0; ci < k->cin; ci++)
                            m->weights[wo++] = (float)k->kernel[(p * k->cin + ci) * k->c + o];
            } else {
                /* [kh][kw][in][dm] is already [1][kh][kw][in*dm] */
                size_t n = (size_t)k->kh * k->kw * k->c;
                for (size_t j = 0; j < n; j++)
                    m->weights[wo++] = (float)k->kernel[j];
            }
            op->bias = wo;
            for (uint32_t o = 0; o < k->c; o++)
                m->weights[wo++] = (float)k->bias[o];
            break;
        }
        case K_ADD: op->kind = OP_ADD; break;
        case K_RELU: op->kind = OP_CLAMP; break;
        case K_PAD: op->kind = OP_PAD; break;
        default: return lk_err_set(err, LK_ERR_INTERNAL, "layer %s: unexpected live kind", k->name);
        }
    }
    m->n_weights = wo;
    const struct knode *out = &g->n[resolve(g, out_idx)];
    m->out_value = out->value;
    m->dim = out->c;
    return LK_OK;
}

/* ==== XNNPACK subgraph ==== */

#define XNN_TRY(call, what)                                                                                \
    do {                                                                                                   \
        enum xnn_status st_ = (call);                                                                      \
        if (st_ != xnn_status_success) {                                                                   \
            rc = lk_err_set(err, LK_ERR_MODEL, "XNNPACK rejected %s (status %d)", (what), (int)st_);       \
            goto fail;                                                                                     \
        }                                                                                                  \
    } while (0)

static int build_subgraph_int8(const struct lk_cnn_model *m, xnn_subgraph_t *out, struct lk_err *err);

/* Build a fresh FP32 subgraph for `m`: external value 0 = input [1,H,W,3],
 * external value 1 = pooled output [1,1,1,C]; with `expose`, also external
 * value 2+i = the output of plan op i (for calibration).  Static tensors
 * point into m->weights (which therefore must outlive any runtime made from
 * it).  An INT8 model gets build_subgraph_int8(). */
static int build_subgraph(const struct lk_cnn_model *m, bool expose, xnn_subgraph_t *out, struct lk_err *err)
{
    if (m->precision == LK_CNN_INT8)
        return build_subgraph_int8(m, out, err);
    int rc = LK_OK;
    xnn_subgraph_t sg = NULL;
    uint32_t *vid = malloc((m->n_ops + 1) * sizeof *vid);
    if (!vid)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    XNN_TRY(xnn_create_subgraph(2 + (expose ? (uint32_t)m->n_ops : 0), 0, &sg), "subgraph creation");
    size_t in_dims[4] = {1, m->in_h, m->in_w, m->in_c};
    XNN_TRY(xnn_define_tensor_value(sg, xnn_datatype_fp32, 4, in_dims, NULL, 0, XNN_VALUE_FLAG_EXTERNAL_INPUT,
                                    &vid[0]),
            "the input tensor");
    for (size_t i = 0; i < m->n_ops; i++) {
        const struct plan_op *op = &m->ops[i];
        size_t dims[4] = {1, op->h, op->w, op->c};
        uint32_t y;
        XNN_TRY(xnn_define_tensor_value(sg, xnn_datatype_fp32, 4, dims, NULL,
                                        expose ? 2 + (uint32_t)i : XNN_INVALID_VALUE_ID,
                                        expose ? XNN_VALUE_FLAG_EXTERNAL_OUTPUT : 0, &y),
                "an activation tensor");
        vid[i + 1] = y;
        uint32_t x = vid[op->in0];
        switch (op->kind) {
        case OP_CONV:
        case OP_DWCONV: {
            uint32_t fid, bid;
            size_t fdims[4] = {op->kind == OP_CONV ? op->c : 1, op->kh, op->kw, op->kind == OP_CONV ? op->cin : op->c};
            size_t bdims[1] = {op->c};
            XNN_TRY(xnn_define_tensor_value(sg, xnn_datatype_fp32, 4, fdims, m->weights + op->filter,
                                            XNN_INVALID_VALUE_ID, 0, &fid),
                    "a filter tensor");
            XNN_TRY(xnn_define_tensor_value(sg, xnn_datatype_fp32, 1, bdims, m->weights + op->bias,
                                            XNN_INVALID_VALUE_ID, 0, &bid),
                    "a bias tensor");
            if (op->kind == OP_CONV)
                XNN_TRY(xnn_define_convolution_2d(sg, op->pad_t, op->pad_r, op->pad_b, op->pad_l, op->kh, op->kw,
                                                  op->sh, op->sw, op->dh, op->dw, 1, op->cin, op->c, op->out_min,
                                                  op->out_max, x, fid, bid, y, 0),
                        "a convolution");
            else
                XNN_TRY(xnn_define_depthwise_convolution_2d(sg, op->pad_t, op->pad_r, op->pad_b, op->pad_l, op->kh,
                                                            op->kw, op->sh, op->sw, op->dh, op->dw, op->dm, op->cin,
                                                            op->out_min, op->out_max, x, fid, bid, y, 0),
                        "a depthwise convolution");
            break;
        }
        case OP_ADD:
            XNN_TRY(xnn_define_add2(sg, op->out_min, op->out_max, x, vid[op->in1], y, 0), "an add");
            break;
        case OP_CLAMP:
            XNN_TRY(xnn_define_clamp(sg, op->out_min, op->out_max, x, y, 0), "a clamp");
            break;
        case OP_PAD: {
            size_t pre[4] = {0, op->pad_t, op->pad_l, 0}, post[4] = {0, op->pad_b, op->pad_r, 0};
            XNN_TRY(xnn_define_static_constant_pad(sg, pre, post, 0.0f, x, y, 0), "a zero padding");
            break;
        }
        }
    }
    size_t pdims[4] = {1, 1, 1, m->dim};
    uint32_t pid;
    XNN_TRY(xnn_define_tensor_value(sg, xnn_datatype_fp32, 4, pdims, NULL, 1, XNN_VALUE_FLAG_EXTERNAL_OUTPUT, &pid),
            "the output tensor");
    XNN_TRY(xnn_define_global_average_pooling_2d(sg, -INFINITY, INFINITY, vid[m->out_value], pid, 0),
            "global average pooling");
    free(vid);
    *out = sg;
    return LK_OK;
fail:
    free(vid);
    if (sg)
        xnn_delete_subgraph(sg);
    return rc;
}

/* ==== INT8: quantised plan and subgraph ==== */

/* True if `op` reads the network input, directly or through zero padding. */
static bool reads_input(const struct lk_cnn_model *m, const struct plan_op *op)
{
    uint32_t v = op->in0;
    while (v > 0 && m->ops[v - 1].kind == OP_PAD)
        v = m->ops[v - 1].in0;
    return v == 0;
}

/* The int8 input holds x - 1/255 (file comment): add (1/255) * sum(w) to
 * each output channel's float bias of a convolution that reads it, so its
 * output is that of x.  Runs on the folded float weights, which an INT8
 * model frees after quantisation.  Filters are OHWI for a convolution
 * ([c][per]) and [1][kh][kw][c] for a depthwise one (per = kh*kw). */
static void absorb_input_offset(struct lk_cnn_model *m, const struct plan_op *op, size_t per)
{
    const float *w = m->weights + op->filter;
    float *b = m->weights + op->bias;
    for (size_t c = 0; c < op->c; c++) {
        double sum = 0.0;
        for (size_t k = 0; k < per; k++)
            sum += op->kind == OP_DWCONV ? w[k * op->c + c] : w[c * per + k];
        b[c] += (float)(sum / 255.0);
    }
}

/* Activation parameters of every plan value and per-channel int8 weights,
 * from the folded float weights and the calibrated ranges (scheme in
 * quantize.c).  Value 0 is the input: scale 1/127.5, zero point 0, holding
 * pixel - 128 (file comment).  A ReLU6 output gets [0, 6]
 * with no calibration needed; every other tensor needs its range from `cal`
 * (LK_ERR_MODEL if absent), clipped to the node's own clamp. */
static int quantize_plan(struct lk_cnn_model *m, const struct lk__calib *cal, const char *cal_path,
                         struct lk_err *err)
{
    size_t nv = m->n_ops + 1, n_qw = 0, n_qb = 0;
    for (size_t i = 0; i < m->n_ops; i++) {
        const struct plan_op *op = &m->ops[i];
        if (op->kind == OP_CONV || op->kind == OP_DWCONV) {
            n_qw += op->bias - op->filter;
            n_qb += op->c;
        }
    }
    m->vscale = malloc(nv * sizeof *m->vscale);
    m->vzp = malloc(nv * sizeof *m->vzp);
    m->qw = malloc(n_qw ? n_qw : 1);
    m->qb = malloc((n_qb ? n_qb : 1) * sizeof *m->qb);
    m->qs = malloc((n_qb ? 2 * n_qb : 1) * sizeof *m->qs);
    if (!m->vscale || !m->vzp || !m->qw || !m->qb || !m->qs)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory for int8 weights");
    /* The input grid: q = p - 128 for pixel p (see the file comment). */
    m->vscale[0] = 1.0f / 127.5f;
    m->vzp[0] = 0;
    size_t wo = 0, bo = 0;
    for (size_t i = 0; i < m->n_ops; i++) {
        struct plan_op *op = &m->ops[i];
        float lo = op->out_min, hi = op->out_max;
        if (op->kind == OP_PAD) {
            lo = -INFINITY, hi = INFINITY;  /* same parameters as the input: see below */
        } else if (!(lo == 0.0f && hi == 6.0f)) {
            float clo, chi;
            if (!lk__calib_find(cal, op->name, &clo, &chi))
                return lk_err_set(err, LK_ERR_MODEL, "%s has no range for layer %s (calibrated for another "
                                  "output layer?)", cal_path, op->name);
            lo = fmaxf(lo, clo), hi = fminf(hi, chi);
        }
        if (op->kind == OP_PAD) {
            m->vscale[i + 1] = m->vscale[op->in0], m->vzp[i + 1] = m->vzp[op->in0];
        } else {
            lk__quant_activation(lo, hi, &m->vscale[i + 1], &m->vzp[i + 1]);
        }
        if (op->kind != OP_CONV && op->kind != OP_DWCONV)
            continue;
        size_t per = (op->bias - op->filter) / op->c;
        op->qfilter = wo, op->qbias = bo, op->qscale = 2 * bo;
        float *wscale = m->qs + op->qscale, *bscale = wscale + op->c;
        lk__quant_weights(m->weights + op->filter, op->c, per, op->kind == OP_DWCONV, m->qw + wo, wscale);
        if (reads_input(m, op))
            absorb_input_offset(m, op, per);
        if (lk__quant_bias(m->weights + op->bias, op->c, m->vscale[op->in0], wscale, m->qb + bo, bscale))
            return lk_err_set(err, LK_ERR_MODEL, "layer %s: a bias does not fit int32 at this scale", op->name);
        wo += per * op->c;
        bo += op->c;
    }
    return LK_OK;
}

/* The INT8 graph's first convolution as a 1x1 convolution over patches
 * gathered by im2col(), when that saves work: XNNPACK's int8 IGEMM packs
 * the input channels of EACH kernel tap up to 8 (its "c8" kernels), so
 * MobileNetV2's Conv1 (3x3 taps of 3 channels, 112x112x32 outputs) runs 72
 * multiply-adds per output for 27 useful ones and was ~12 % of the int8
 * instructions; as a GEMM over 27-byte patches it runs 32.  Returns 1 + the
 * op index, or 0 when the network input does not feed exactly one
 * undilated convolution with more than one tap and a channel count that is
 * not a multiple of 8.  The patches cost out_h*out_w*kh*kw*in_c bytes
 * (339 kB at 224x224) and ~0.05 ms to gather. */
static uint32_t pick_im2col(const struct lk_cnn_model *m)
{
    uint32_t found = 0, readers = 0;
    for (size_t i = 0; i < m->n_ops; i++) {
        const struct plan_op *op = &m->ops[i];
        if (op->in0 == 0 || (op->kind == OP_ADD && op->in1 == 0)) {
            readers++;
            found = (uint32_t)i + 1;
        }
    }
    if (readers != 1)
        return 0;
    const struct plan_op *op = &m->ops[found - 1];
    if (op->kind != OP_CONV || op->dh != 1 || op->dw != 1 || op->kh * op->kw < 2 || op->cin % 8 == 0 ||
        (size_t)op->kh * op->kw * op->cin > 256)
        return 0;
    return found;
}

/* Build a fresh INT8 subgraph: the int8 input (external 0, pixel - 128),
 * qint8 activations with qcint8 per-channel filters and qcint32 biases, and
 * the int8 output layer itself as external 1; run() pools it with
 * exact integer sums (the old convert-to-float + float pool nodes cost ~0.05
 * ms).  Clamps are passed to XNNPACK within each tensor's representable
 * range. */
static int build_subgraph_int8(const struct lk_cnn_model *m, xnn_subgraph_t *out, struct lk_err *err)
{
    int rc = LK_OK;
    xnn_subgraph_t sg = NULL;
    uint32_t *vid = malloc((m->n_ops + 1) * sizeof *vid);
    if (!vid)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    XNN_TRY(xnn_create_subgraph(2, 0, &sg), "subgraph creation");
    size_t in_dims[4] = {1, m->in_h, m->in_w, m->in_c};
    if (m->im2col) {
        const struct plan_op *c1 = &m->ops[m->im2col - 1];
        in_dims[1] = c1->h, in_dims[2] = c1->w, in_dims[3] = (size_t)c1->kh * c1->kw * c1->cin;
    }
    XNN_TRY(xnn_define_quantized_tensor_value(sg, xnn_datatype_qint8, m->vzp[0], m->vscale[0], 4, in_dims, NULL, 0,
                                              XNN_VALUE_FLAG_EXTERNAL_INPUT, &vid[0]),
            "the int8 input tensor");
    for (size_t i = 0; i < m->n_ops; i++) {
        const struct plan_op *op = &m->ops[i];
        size_t dims[4] = {1, op->h, op->w, op->c};
        float s = m->vscale[i + 1];
        int32_t zp = m->vzp[i + 1];
        float lo = fmaxf(op->out_min, (float)(-128 - zp) * s), hi = fminf(op->out_max, (float)(127 - zp) * s);
        uint32_t y;
        bool is_out = i + 1 == m->out_value;
        XNN_TRY(xnn_define_quantized_tensor_value(sg, xnn_datatype_qint8, zp, s, 4, dims, NULL,
                                                  is_out ? 1 : XNN_INVALID_VALUE_ID,
                                                  is_out ? XNN_VALUE_FLAG_EXTERNAL_OUTPUT : 0, &y),
                "an int8 activation tensor");
        vid[i + 1] = y;
        uint32_t x = vid[op->in0];
        switch (op->kind) {
        case OP_CONV:
        case OP_DWCONV: {
            bool conv = op->kind == OP_CONV;
            /* im2col: the same OHWI filter read as [c][1][1][kh*kw*cin]
             * over patches already padded and strided (pick_im2col()). */
            bool patches = i + 1 == m->im2col;
            uint32_t kh = patches ? 1 : op->kh, kw = patches ? 1 : op->kw, st = patches ? 1 : op->sh,
                     sw = patches ? 1 : op->sw, cin = patches ? op->kh * op->kw * op->cin : op->cin;
            uint32_t pt = patches ? 0 : op->pad_t, pr = patches ? 0 : op->pad_r, pb = patches ? 0 : op->pad_b,
                     pl = patches ? 0 : op->pad_l;
            uint32_t fid, bid;
            size_t fdims[4] = {conv ? op->c : 1, kh, kw, conv ? cin : op->c};
            size_t bdims[1] = {op->c};
            const float *wscale = m->qs + op->qscale;
            XNN_TRY(xnn_define_channelwise_quantized_tensor_value(sg, xnn_datatype_qcint8, wscale, 4, conv ? 0 : 3,
                                                                  fdims, m->qw + op->qfilter, XNN_INVALID_VALUE_ID, 0,
                                                                  &fid),
                    "an int8 filter tensor");
            XNN_TRY(xnn_define_channelwise_quantized_tensor_value(sg, xnn_datatype_qcint32, wscale + op->c, 1, 0,
                                                                  bdims, m->qb + op->qbias, XNN_INVALID_VALUE_ID, 0,
                                                                  &bid),
                    "an int32 bias tensor");
            if (conv)
                XNN_TRY(xnn_define_convolution_2d(sg, pt, pr, pb, pl, kh, kw, st, sw, op->dh, op->dw, 1, cin, op->c,
                                                  lo, hi, x, fid, bid, y, 0),
                        "an int8 convolution");
            else
                XNN_TRY(xnn_define_depthwise_convolution_2d(sg, op->pad_t, op->pad_r, op->pad_b, op->pad_l, op->kh,
                                                            op->kw, op->sh, op->sw, op->dh, op->dw, op->dm, op->cin,
                                                            lo, hi, x, fid, bid, y, 0),
                        "an int8 depthwise convolution");
            break;
        }
        case OP_ADD:
            XNN_TRY(xnn_define_add2(sg, lo, hi, x, vid[op->in1], y, 0), "an int8 add");
            break;
        case OP_CLAMP:
            XNN_TRY(xnn_define_clamp(sg, lo, hi, x, y, 0), "an int8 clamp");
            break;
        case OP_PAD: {
            size_t pre[4] = {0, op->pad_t, op->pad_l, 0}, post[4] = {0, op->pad_b, op->pad_r, 0};
            XNN_TRY(xnn_define_static_constant_pad(sg, pre, post, 0.0f, x, y, 0), "an int8 zero padding");
            break;
        }
        }
    }
    free(vid);
    *out = sg;
    return LK_OK;
fail:
    free(vid);
    if (sg)
        xnn_delete_subgraph(sg);
    return rc;
}

/* ==== Public API ==== */

static void model_unref(struct lk_cnn_model *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        free(m->ops);
        free(m->weights);
        free(m->qw);
        free(m->qb);
        free(m->qs);
        free(m->vscale);
        free(m->vzp);
        free(m);
    }
}

int lk_cnn_load(const char *model_dir, struct lk_cnn_model **out, struct lk_err *err)
{
    return lk_cnn_load_layer(model_dir, NULL, out, err);
}

int lk_cnn_load_layer(const char *model_dir, const char *output_layer, struct lk_cnn_model **out,
                      struct lk_err *err)
{
    struct lk_cnn_options o;
    lk_cnn_options_init(&o);
    o.output_layer = output_layer;
    o.precision = LK_CNN_FP32;
    return lk_cnn_load_opts(model_dir, &o, out, err);
}

void lk_cnn_options_init(struct lk_cnn_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->precision = LK_CNN_PRECISION_DEFAULT;
}

const char *lk_cnn_precision_name(enum lk_cnn_precision p)
{
    return p == LK_CNN_FP32 ? "fp32" : p == LK_CNN_INT8 ? "int8" : "?";
}

int lk_cnn_precision_parse(const char *s, enum lk_cnn_precision *out, struct lk_err *err)
{
    if (s && out && !strcmp(s, "fp32"))
        *out = LK_CNN_FP32;
    else if (s && out && !strcmp(s, "int8"))
        *out = LK_CNN_INT8;
    else
        return lk_err_set(err, LK_ERR_INVALID_ARG, "unknown CNN precision '%s' (fp32 or int8)", s ? s : "(null)");
    return LK_OK;
}

enum lk_cnn_precision lk_cnn_precision(const struct lk_cnn_model *m)
{
    return m ? m->precision : LK_CNN_FP32;
}

int lk_cnn_load_opts(const char *model_dir, const struct lk_cnn_options *opts, struct lk_cnn_model **out,
                     struct lk_err *err)
{
    struct lk_cnn_options defaults;
    if (!opts) {
        lk_cnn_options_init(&defaults);
        opts = &defaults;
    }
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_load: out is NULL");
    *out = NULL;
    if (!model_dir || !*model_dir)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_load: no model directory");
    if (opts->precision != LK_CNN_FP32 && opts->precision != LK_CNN_INT8)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_load: unknown precision %d", (int)opts->precision);
    const char *output_layer = opts->output_layer ? opts->output_layer : LK_CNN_DEFAULT_LAYER;
    if (!*output_layer || strlen(output_layer) > LK_CNN_LAYER_NAME_MAX)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_load: bad output layer name");
    if (strlen(model_dir) > 3800)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_load: model directory path too long");
    int rc = xnn_ready(err);
    if (rc)
        return rc;

    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", model_dir);
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    struct manifest mf = {0};
    struct graph g = {0};
    struct lk_cnn_model *m = NULL;
    struct lk__calib cal = {0};
    char cal_path[4096];
    rc = read_file(path, MODEL_JSON_MAX, &text, &len, err);
    if (rc == LK_ERR_IO) {
        char why[LK_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err ? err->msg : "cannot read model.json");
        rc = lk_err_set(err, LK_ERR_MODEL, "%s (run models/fetch?)", why);
    }
    if (rc)
        goto done;
    root = cJSON_ParseWithLength(text, len);
    if (!root) {
        rc = lk_err_set(err, LK_ERR_MODEL, "%s: not valid JSON", path);
        goto done;
    }
    const cJSON *topo = cJSON_GetObjectItemCaseSensitive(root, "modelTopology");
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(topo, "model_config");
    if (!mc)
        mc = topo;
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(mc, "class_name");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(mc, "config");
    if (!cJSON_IsString(cls) || !cJSON_IsObject(cfg) ||
        (strcmp(cls->valuestring, "Model") && strcmp(cls->valuestring, "Functional"))) {
        rc = lk_err_set(err, LK_ERR_MODEL, "%s: modelTopology is not a Keras functional model", path);
        goto done;
    }
    mf.hash = fnv1a64(FNV1A64_INIT, (const uint8_t *)text, len);
    rc = load_manifest(model_dir, cJSON_GetObjectItemCaseSensitive(root, "weightsManifest"), &mf, err);
    if (rc)
        goto done;
    rc = parse_layers(cJSON_GetObjectItemCaseSensitive(cfg, "layers"), &g, err);
    if (rc)
        goto done;
    int out_idx = find_node(&g, output_layer);
    if (out_idx < 0) {
        rc = lk_err_set(err, LK_ERR_MODEL, "no layer named %s in %s", output_layer, path);
        goto done;
    }
    rc = build_graph(&g, out_idx, &mf, err);
    if (rc)
        goto done;
    m = calloc(1, sizeof *m);
    if (!m) {
        rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory");
        goto done;
    }
    atomic_init(&m->refs, 1);
    snprintf(m->layer, sizeof m->layer, "%s", output_layer);
    m->model_id = mf.hash;
    rc = emit_plan(&g, out_idx, m, err);
    if (rc)
        goto done;
    if (opts->precision == LK_CNN_INT8) {
        if (m->out_value == 0) {
            rc = lk_err_set(err, LK_ERR_MODEL, "int8: the output layer %s is the input", output_layer);
            goto done;
        }
        if (opts->calibration_path)
            snprintf(cal_path, sizeof cal_path, "%s", opts->calibration_path);
        else
            snprintf(cal_path, sizeof cal_path, "%s/%s", model_dir, LK_CNN_CALIBRATION_FILE);
        rc = lk__calib_load(cal_path, m->model_id, &cal, err);
        if (!rc)
            rc = quantize_plan(m, &cal, cal_path, err);
        if (rc)
            goto done;
        m->im2col = pick_im2col(m);
        /* The float weights were only the source of the int8 ones. */
        free(m->weights);
        m->weights = NULL;
        m->precision = LK_CNN_INT8;
    }
    /* Let XNNPACK check every shape now, so a bad model fails here rather
     * than in lk_cnn_workspace_new(). */
    xnn_subgraph_t sg;
    rc = build_subgraph(m, false, &sg, err);
    if (rc)
        goto done;
    xnn_delete_subgraph(sg);
    *out = m;
    m = NULL;
done:
    lk__calib_free(&cal);
    model_unref(m);
    graph_free(&g);
    manifest_free(&mf);
    cJSON_Delete(root);
    free(text);
    return rc;
}

void lk_cnn_free(struct lk_cnn_model *m)
{
    model_unref(m);
}

size_t lk_cnn_dim(const struct lk_cnn_model *m)
{
    return m ? m->dim : 0;
}

void lk_cnn_input_size(const struct lk_cnn_model *m, uint32_t *width, uint32_t *height)
{
    if (width)
        *width = m ? m->in_w : 0;
    if (height)
        *height = m ? m->in_h : 0;
}

const char *lk_cnn_layer(const struct lk_cnn_model *m)
{
    return m ? m->layer : "";
}

int lk_cnn_workspace_new(struct lk_cnn_model *m, struct lk_cnn_workspace **out, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_workspace_new: out is NULL");
    *out = NULL;
    if (!m)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_workspace_new: model is NULL");
    struct lk_cnn_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    ws->model = m;
    size_t n_in = (size_t)m->in_h * m->in_w * m->in_c;
    bool q8 = m->precision == LK_CNN_INT8;
    size_t in_bytes = input_bytes(m);
    ws->input = malloc(in_bytes + XNN_EXTRA_BYTES);
    if (q8) {
        ws->output = malloc(out_pixels(m) * m->dim + XNN_EXTRA_BYTES);
        ws->sums = malloc(m->dim * sizeof *ws->sums);
        ws->scratch = m->im2col ? malloc(n_in) : NULL;
    } else {
        ws->output = malloc(m->dim * sizeof(float) + XNN_EXTRA_BYTES);
        ws->scratch = malloc(n_in * sizeof(float));
    }
    if (!ws->input || !ws->output || (q8 && !ws->sums) || (!ws->scratch && (!q8 || m->im2col))) {
        lk_cnn_workspace_free(ws);
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory for CNN buffers");
    }
    /* Deterministic slack: XNNPACK may read (never use) it. */
    memset((char *)ws->input + in_bytes, 0, XNN_EXTRA_BYTES);
    xnn_subgraph_t sg;
    int rc = build_subgraph(m, false, &sg, err);
    if (rc) {
        lk_cnn_workspace_free(ws);
        return rc;
    }
    enum xnn_status st = xnn_create_runtime_v2(sg, NULL, 0, &ws->runtime);
    xnn_delete_subgraph(sg);  /* the runtime is independent of the subgraph */
    if (st != xnn_status_success) {
        ws->runtime = NULL;
        lk_cnn_workspace_free(ws);
        return lk_err_set(err, st == xnn_status_out_of_memory ? LK_ERR_NOMEM : LK_ERR_MODEL,
                          "XNNPACK could not create a runtime (status %d)", (int)st);
    }
    /* External buffers never move, so the runtime is set up once. */
    struct xnn_external_value ext[2] = {{0, ws->input}, {1, ws->output}};
    st = xnn_setup_runtime(ws->runtime, 2, ext);
    if (st != xnn_status_success) {
        lk_cnn_workspace_free(ws);
        return lk_err_set(err, LK_ERR_MODEL, "XNNPACK runtime setup failed (status %d)", (int)st);
    }
    *out = ws;
    return LK_OK;
}

void lk_cnn_workspace_free(struct lk_cnn_workspace *ws)
{
    if (!ws)
        return;
    if (ws->runtime)
        xnn_delete_runtime(ws->runtime);
    free(ws->input);
    free(ws->output);
    free(ws->scratch);
    free(ws->sums);
    model_unref(ws->model);
    free(ws);
}

/* INT8: where the int8 image goes (the runtime's input, or the scratch
 * buffer im2col() gathers patches from). */
static int8_t *int8_image(struct lk_cnn_workspace *ws)
{
    return ws->model->im2col ? ws->scratch : ws->input;
}

/* Gather the patches of the first convolution (pick_im2col()) from the int8
 * image `src` (in_h x in_w x in_c) into `dst` ([out_h][out_w][kh][kw][in_c],
 * the order of the OHWI filter): taps outside the image read the input
 * zero point, 0, which is real 0 like the convolution's own zero padding.
 * Loop order: one (output row, kernel row) pair at a time, so the source
 * row is fixed and each output pixel copies kw*in_c contiguous bytes; the
 * 9-byte case (3x3 taps of RGB) is two fixed-size moves. */
static void im2col(const struct lk_cnn_model *m, const int8_t *src, int8_t *dst)
{
    const struct plan_op *op = &m->ops[m->im2col - 1];
    const long H = m->in_h, W = m->in_w, C = m->in_c, kw = op->kw, sw = op->sw;
    const size_t kwc = (size_t)kw * C, K = kwc * op->kh, ow = op->w;
    for (uint32_t oy = 0; oy < op->h; oy++) {
        int8_t *drow = dst + (size_t)oy * ow * K;
        for (uint32_t ky = 0; ky < op->kh; ky++) {
            int8_t *d = drow + ky * kwc;
            long iy = (long)oy * op->sh + ky - op->pad_t;
            if (iy < 0 || iy >= H) {
                for (size_t ox = 0; ox < ow; ox++)
                    memset(d + ox * K, 0, kwc);
                continue;
            }
            const int8_t *row = src + iy * W * C;
            for (size_t ox = 0; ox < ow; ox++) {
                long ix0 = (long)ox * sw - op->pad_l;
                int8_t *dp = d + ox * K;
                if (ix0 >= 0 && ix0 + kw <= W) {
                    const int8_t *sp = row + ix0 * C;
                    if (kwc == 9) {
                        memcpy(dp, sp, 8);
                        dp[8] = sp[8];
                    } else {
                        memcpy(dp, sp, kwc);
                    }
                    continue;
                }
                for (long kx = 0; kx < kw; kx++) {
                    long ix = ix0 + kx;
                    if (ix >= 0 && ix < W)
                        memcpy(dp + kx * C, row + ix * C, (size_t)C);
                    else
                        memset(dp + kx * C, 0, (size_t)C);
                }
            }
        }
    }
}

/* Run the runtime on ws->input and write the descriptor.  INT8: the mean
 * over the output layer's pixels of each channel, from exact integer sums
 * (196 x 576 bytes at the default layer, ~15 us; the loop over pixels with
 * the channel innermost vectorises; 64-bit so no feature map size can
 * overflow them), dequantised once per channel. */
static int run(struct lk_cnn_workspace *ws, float *out, struct lk_err *err)
{
    const struct lk_cnn_model *m = ws->model;
    if (m->im2col)
        im2col(m, ws->scratch, ws->input);
    enum xnn_status st = xnn_invoke_runtime(ws->runtime);
    if (st != xnn_status_success)
        return lk_err_set(err, LK_ERR_MODEL, "XNNPACK inference failed (status %d)", (int)st);
    if (m->precision != LK_CNN_INT8) {
        memcpy(out, ws->output, m->dim * sizeof(float));
        return LK_OK;
    }
    const int8_t *y = ws->output;
    int64_t *sum = ws->sums;
    size_t dim = m->dim, np = out_pixels(m);
    memset(sum, 0, dim * sizeof *sum);
    for (size_t p = 0; p < np; p++, y += dim)
        for (size_t c = 0; c < dim; c++)
            sum[c] += y[c];
    float s = m->vscale[m->out_value];
    double zp = m->vzp[m->out_value];
    for (size_t c = 0; c < dim; c++)
        out[c] = (float)(s * ((double)sum[c] / (double)np - zp));
    return LK_OK;
}

int lk_cnn_forward(struct lk_cnn_workspace *ws, const float *input, float *out, struct lk_err *err)
{
    if (!ws || !input || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_forward: NULL argument");
    const struct lk_cnn_model *m = ws->model;
    size_t n = (size_t)m->in_h * m->in_w * m->in_c;
    /* Write the padded input buffer and reject NaN/Inf in one pass (the
     * and-reduction keeps the loop branch-free so it vectorises).  INT8:
     * back to the pixel scale, rounded, minus 128 (the grid of the file
     * comment; a normalised pixel comes back exactly); clamped first so
     * the conversion to int is defined. */
    int finite = 1;
    if (m->precision == LK_CNN_INT8) {
        int8_t *q = int8_image(ws);
        for (size_t i = 0; i < n; i++) {
            float v = input[i];
            finite &= isfinite(v) != 0;
            float p = fminf(fmaxf(v * 127.5f + 127.5f, 0.0f), 255.0f);
            q[i] = (int8_t)((int)(p + 0.5f) - 128);
        }
    } else {
        float *x = ws->input;
        for (size_t i = 0; i < n; i++) {
            float v = input[i];
            finite &= isfinite(v) != 0;
            x[i] = v;
        }
    }
    if (!finite)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_forward: input holds NaN or Inf");
    return run(ws, out, err);
}

/* INT8 input from 8-bit pixels of an image at the input size: p - 128
 * (the grid of the file comment), no float on the way. */
static void pixels_to_int8(const struct lk_image *img, int8_t *q)
{
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t i = 0; i < n; i++)
        q[i] = (int8_t)(img->rgb[i] ^ 0x80u);
}

/* `img` at the network input size: `img` itself when it already has that
 * size (lk_embed_describe passes such an image; no resize that would only
 * allocate and copy it), else a resized copy in `sized` (the caller frees
 * it with lk_image_free; it stays {0} otherwise). */
static int input_sized(const struct lk_cnn_model *m, const struct lk_image *img, struct lk_image *sized,
                       const struct lk_image **in, struct lk_err *err)
{
    *in = img;
    if (img->rgb && img->width == m->in_w && img->height == m->in_h)
        return LK_OK;
    *in = sized;
    return lk_image_resize(img, m->in_w, m->in_h, sized, err);
}

/* The network input for `img`: resized to the input size, x/127.5 - 1,
 * written to `dst` (in_h*in_w*3 floats). */
static int preprocess(const struct lk_cnn_model *m, const struct lk_image *img, float *dst, struct lk_err *err)
{
    static const float mean[3] = {127.5f, 127.5f, 127.5f};
    static const float scale[3] = {1.0f / 127.5f, 1.0f / 127.5f, 1.0f / 127.5f};
    struct lk_image sized = {0};
    const struct lk_image *in;
    int rc = input_sized(m, img, &sized, &in, err);
    if (!rc)
        rc = lk_image_to_float(in, LK_LAYOUT_HWC, mean, scale, dst, err);
    lk_image_free(&sized);
    return rc;
}

int lk_cnn_describe(struct lk_cnn_workspace *ws, const struct lk_image *img, float *out, struct lk_err *err)
{
    if (!ws || !img || !out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_describe: NULL argument");
    const struct lk_cnn_model *m = ws->model;
    if (m->precision != LK_CNN_INT8) {
        int rc = preprocess(m, img, ws->scratch, err);
        return rc ? rc : lk_cnn_forward(ws, ws->scratch, out, err);
    }
    /* INT8: straight from the pixels. */
    struct lk_image sized = {0};
    const struct lk_image *in;
    int rc = input_sized(m, img, &sized, &in, err);
    if (!rc) {
        pixels_to_int8(in, int8_image(ws));
        rc = run(ws, out, err);
    }
    lk_image_free(&sized);
    return rc;
}

/* ==== Calibration ====
 *
 * An FP32 runtime whose every plan value is an external output, so one
 * inference exposes all intermediate tensors (XNNPACK keeps external values
 * out of its arena and lets other nodes read them).  Memory: the sum of all
 * activations, ~30 MB for the full MobileNetV2; a dev-time tool only. */

struct lk_cnn_calibrator {
    struct lk_cnn_model *model;
    xnn_runtime_t runtime;
    float *input, *pooled;
    float **acts;                   /* n_ops activation buffers */
    float *lo, *hi;                 /* n_ops observed ranges */
    size_t images;
};

void lk_cnn_calibrator_free(struct lk_cnn_calibrator *c)
{
    if (!c)
        return;
    if (c->runtime)
        xnn_delete_runtime(c->runtime);
    for (size_t i = 0; c->acts && i < c->model->n_ops; i++)
        free(c->acts[i]);
    free(c->acts);
    free(c->input);
    free(c->pooled);
    free(c->lo);
    free(c->hi);
    model_unref(c->model);
    free(c);
}

int lk_cnn_calibrator_new(struct lk_cnn_model *m, struct lk_cnn_calibrator **out, struct lk_err *err)
{
    if (!out)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_calibrator_new: out is NULL");
    *out = NULL;
    if (!m || m->precision != LK_CNN_FP32)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_calibrator_new: needs an FP32 model");
    struct lk_cnn_calibrator *c = calloc(1, sizeof *c);
    if (!c)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    c->model = m;
    size_t n = m->n_ops;
    struct xnn_external_value *ext = calloc(n + 2, sizeof *ext);
    c->acts = calloc(n ? n : 1, sizeof *c->acts);
    c->lo = malloc((n ? n : 1) * sizeof *c->lo);
    c->hi = malloc((n ? n : 1) * sizeof *c->hi);
    c->input = calloc(1, (size_t)m->in_h * m->in_w * m->in_c * sizeof(float) + XNN_EXTRA_BYTES);
    c->pooled = malloc(m->dim * sizeof(float) + XNN_EXTRA_BYTES);
    int rc = !ext || !c->acts || !c->lo || !c->hi || !c->input || !c->pooled
                 ? lk_err_set(err, LK_ERR_NOMEM, "out of memory") : LK_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        const struct plan_op *op = &m->ops[i];
        c->acts[i] = malloc((size_t)op->h * op->w * op->c * sizeof(float) + XNN_EXTRA_BYTES);
        if (!c->acts[i])
            rc = lk_err_set(err, LK_ERR_NOMEM, "out of memory for calibration buffers");
        c->lo[i] = INFINITY, c->hi[i] = -INFINITY;
        ext[i + 2] = (struct xnn_external_value){(uint32_t)(i + 2), c->acts[i]};
    }
    xnn_subgraph_t sg = NULL;
    if (!rc)
        rc = build_subgraph(m, true, &sg, err);
    if (!rc) {
        enum xnn_status st = xnn_create_runtime_v2(sg, NULL, 0, &c->runtime);
        xnn_delete_subgraph(sg);
        if (st != xnn_status_success) {
            c->runtime = NULL;
            rc = lk_err_set(err, LK_ERR_MODEL, "XNNPACK could not create the calibration runtime (status %d)", (int)st);
        }
    }
    if (!rc) {
        ext[0] = (struct xnn_external_value){0, c->input};
        ext[1] = (struct xnn_external_value){1, c->pooled};
        enum xnn_status st = xnn_setup_runtime(c->runtime, n + 2, ext);
        if (st != xnn_status_success)
            rc = lk_err_set(err, LK_ERR_MODEL, "XNNPACK calibration runtime setup failed (status %d)", (int)st);
    }
    free(ext);
    if (rc) {
        lk_cnn_calibrator_free(c);
        return rc;
    }
    *out = c;
    return LK_OK;
}

int lk_cnn_calibrator_add(struct lk_cnn_calibrator *c, const struct lk_image *img, struct lk_err *err)
{
    if (!c || !img)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_calibrator_add: NULL argument");
    const struct lk_cnn_model *m = c->model;
    int rc = preprocess(m, img, c->input, err);
    if (rc)
        return rc;
    enum xnn_status st = xnn_invoke_runtime(c->runtime);
    if (st != xnn_status_success)
        return lk_err_set(err, LK_ERR_MODEL, "XNNPACK inference failed (status %d)", (int)st);
    for (size_t i = 0; i < m->n_ops; i++) {
        const struct plan_op *op = &m->ops[i];
        size_t n = (size_t)op->h * op->w * op->c;
        float lo = c->lo[i], hi = c->hi[i];
        for (size_t j = 0; j < n; j++) {
            lo = fminf(lo, c->acts[i][j]);
            hi = fmaxf(hi, c->acts[i][j]);
        }
        c->lo[i] = lo, c->hi[i] = hi;
    }
    c->images++;
    return LK_OK;
}

int lk_cnn_calibrator_save(const struct lk_cnn_calibrator *c, const char *source, const char *path,
                           struct lk_err *err)
{
    if (!c || !path)
        return lk_err_set(err, LK_ERR_INVALID_ARG, "lk_cnn_calibrator_save: NULL argument");
    if (c->images == 0)
        return lk_err_set(err, LK_ERR_EMPTY, "lk_cnn_calibrator_save: no image was added");
    const struct lk_cnn_model *m = c->model;
    struct lk__calib cal = {0};
    cal.names = calloc(m->n_ops ? m->n_ops : 1, sizeof *cal.names);
    if (!cal.names)
        return lk_err_set(err, LK_ERR_NOMEM, "out of memory");
    cal.lo = c->lo, cal.hi = c->hi, cal.n = m->n_ops;  /* borrowed */
    for (size_t i = 0; i < m->n_ops; i++)
        memcpy(cal.names[i], m->ops[i].name, sizeof cal.names[i]);
    int rc = lk__calib_save(&cal, m->model_id, c->images, source, path, err);
    free(cal.names);
    return rc;
}
