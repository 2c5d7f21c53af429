/*
 * lookalike/embed.h — the learned image descriptor (a truncated MobileNetV2
 * run with XNNPACK) and the fused product embedding stored in the index.
 *
 * ==== Learned descriptor (src/embed/cnn.c) ====
 *
 * Method: MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and
 * Linear Bottlenecks", CVPR 2018), alpha 1.0, 224x224 input, weights from the
 * npm package nsfwjs 4.3.0 (see models/README.md, the model card).  The
 * network is cut at a named layer (default LK_CNN_DEFAULT_LAYER,
 * block_13_expand_relu: 14x14x576) and the layer's output is averaged over
 * height and width (global average pooling), giving an lk_cnn_dim()-float
 * descriptor (576 for the default layer).  Operators run on XNNPACK's subgraph
 * API (Debian libxnnpack0, single-threaded per workspace).
 *
 * Model files: a TensorFlow.js layers model, i.e. `model.json`
 * ({modelTopology, weightsManifest}) plus the binary weight shards it names,
 * in one directory (models/fetch makes models/mobilenet_v2/).  Supported Keras
 * layers: InputLayer, ZeroPadding2D, Conv2D, DepthwiseConv2D,
 * BatchNormalization (after a convolution; folded into it at load), ReLU /
 * Activation('relu'), Add.  Weights may be float32 or uint8/uint16-quantised
 * (value = q*scale + min).  Layers after the output layer are ignored.
 *
 * Input contract: input height x width x 3 floats, HWC (row-major, RGB
 * interleaved), values x/127.5 - 1 for 8-bit sRGB x, i.e. in [-1, 1];
 * height = width = 224 for the shipped model (lk_cnn_input_size()).
 * Output: lk_cnn_dim() floats, each >= 0 for a ReLU layer; not normalised
 * (lk_embed_fuse() post-processes it).
 *
 * Thread-safety and ownership: a loaded struct lk_cnn_model is immutable and
 * may be shared by any number of threads.  Each thread uses its own
 * struct lk_cnn_workspace (XNNPACK runtime + buffers); a workspace must not be
 * used by two threads at once.  Workspaces keep the model alive (reference
 * count), so lk_cnn_free() may be called before the last workspace is freed.
 * The same holds for both precisions (enum lk_cnn_precision).
 * Memory: the model holds the folded float weights (2.4 MB for the default
 * layer; an int8 model a quarter of that); each workspace holds its own
 * XNNPACK runtime (packed weights + activation arena: 11.3 MB for the
 * default layer, 17.8 MB for the full backbone, 5.1 MB for the default layer
 * in int8, as measured by bench/embed) plus 0.6 MB of buffers.  This
 * XNNPACK version (2022-02) cannot share packed weights between runtimes.
 */
#ifndef LOOKALIKE_EMBED_H
#define LOOKALIKE_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "lookalike/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lk_image;

/* Default output layer: global average pooling of this layer is the
 * descriptor.  Chosen by bench/embed_quality on the grocery photos (see
 * models/README.md for the figures). */
#define LK_CNN_DEFAULT_LAYER "block_13_expand_relu"
/* Longest layer name accepted (Keras names are short identifiers). */
#define LK_CNN_LAYER_NAME_MAX 127

struct lk_cnn_model;
struct lk_cnn_workspace;

/* Arithmetic the network runs in.
 *   LK_CNN_FP32  float32 XNNPACK operators: the reference (matches
 *                TensorFlow.js to 1e-4, tests/embed/test_cnn.c).
 *   LK_CNN_INT8  XNNPACK's signed 8-bit operators (qs8 activations, qc8
 *                per-channel weights, int32 biases), the integer-only scheme
 *                of Jacob et al. (CVPR 2018) as specified by TensorFlow Lite:
 *                weights quantised per output channel (symmetric) at load
 *                after BatchNorm folding; activations per tensor (affine),
 *                ReLU6 outputs on [0, 6], the other tensors on ranges from
 *                the model's calibration file.  Input and output stay float
 *                (converted inside the graph), and the global average pool
 *                runs in float, so the API is unchanged.  Accuracy vs FP32
 *                and speed: see LK_CNN_PRECISION_DEFAULT and models/README.md.
 * Descriptors of different precisions are close but not equal: compare
 * only descriptors made with the same precision (an index records it, see
 * lk_embed_params_set_cnn_precision()). */
enum lk_cnn_precision {
    LK_CNN_FP32 = 0,
    LK_CNN_INT8 = 1,
};

/* Precision lk_cnn_options_init() selects.  INT8 passed the accuracy bar:
 * cosine to the FP32 descriptor per photo, median 0.9997 / 0.9996 / 0.9991
 * (min 0.9985 / 0.9977 / 0.9968) on grocery / clothing / fashion photos,
 * 0.996 / 0.995 / 0.984 after post-processing; grocery recall@1, R@10 and
 * category accuracy within one standard error of FP32 (fused w=0.5 R@1 0.959
 * vs 0.960).  It runs the default layer in about 7.8 ms of thread CPU time
 * vs 12.5 ms with a 5 MB workspace vs 11.3 MB (bench/embed; figures in
 * models/README.md, "Int8 inference" and BENCHMARKS.md). */
#define LK_CNN_PRECISION_DEFAULT LK_CNN_INT8

/* File in the model directory holding the int8 activation ranges
 * (made by models/gen_calibration.sh, committed). */
#define LK_CNN_CALIBRATION_FILE "calibration.json"

struct lk_cnn_options {
    const char *output_layer;           /* Keras layer name; NULL = LK_CNN_DEFAULT_LAYER */
    enum lk_cnn_precision precision;    /* LK_CNN_FP32 or LK_CNN_INT8 */
    const char *calibration_path;       /* INT8 only; NULL = <model_dir>/LK_CNN_CALIBRATION_FILE */
};

/* Defaults: default layer, LK_CNN_PRECISION_DEFAULT, calibration file in the
 * model directory. */
void lk_cnn_options_init(struct lk_cnn_options *o);

/* "fp32" / "int8" (a static string; "?" for an unknown value). */
const char *lk_cnn_precision_name(enum lk_cnn_precision p);

/* Parse "fp32" or "int8".  Errors: LK_ERR_INVALID_ARG. */
int lk_cnn_precision_parse(const char *s, enum lk_cnn_precision *out, struct lk_err *err);

/* Load the TF.js layers model in directory `model_dir` (model.json + weight
 * shards), cut at LK_CNN_DEFAULT_LAYER, in FP32 (the reference precision;
 * lk_cnn_load_opts() chooses another).  Same as lk_cnn_load_layer(model_dir,
 * NULL, out, err). */
int lk_cnn_load(const char *model_dir, struct lk_cnn_model **out, struct lk_err *err);

/* Load the model cut at `output_layer` (a Keras layer name; NULL = default),
 * FP32, and store a new model in *out (free with lk_cnn_free()).
 * Every size, shape, offset and dtype is checked against the files; weights
 * are dequantised in double and BatchNormalization folded into the preceding
 * convolution (w' = w*gamma/sqrt(var+eps), b' = (b-mean)*gamma/sqrt(var+eps)+beta).
 * Errors: LK_ERR_INVALID_ARG (NULL args, name too long), LK_ERR_IO (files
 * cannot be read), LK_ERR_MODEL (malformed JSON, unsupported layer, missing
 * or mis-sized weights, shard size mismatch, unknown output layer, XNNPACK
 * initialisation failure), LK_ERR_NOMEM. */
int lk_cnn_load_layer(const char *model_dir, const char *output_layer, struct lk_cnn_model **out,
                      struct lk_err *err);

/* Load with options (NULL = lk_cnn_options_init() defaults): layer as in
 * lk_cnn_load_layer(), precision as in enum lk_cnn_precision.
 * With LK_CNN_INT8 the calibration file is required and validated: a
 * missing, corrupt or mismatched file is an error, never a silent fallback
 * to FP32 (an index must not mix precisions).  Errors: as
 * lk_cnn_load_layer(), plus LK_ERR_INVALID_ARG (unknown precision), LK_ERR_IO
 * (calibration file missing or unreadable), LK_ERR_PARSE (calibration file
 * not JSON, wrong format/version, a range that is not finite [min <= max]),
 * LK_ERR_MODEL (calibration made for another model, or lacking a range the
 * int8 graph needs). */
int lk_cnn_load_opts(const char *model_dir, const struct lk_cnn_options *opts, struct lk_cnn_model **out,
                     struct lk_err *err);

/* Precision the model runs in. */
enum lk_cnn_precision lk_cnn_precision(const struct lk_cnn_model *m);

/* Release the caller's reference; the memory goes when the last workspace
 * created from it is freed too.  NULL is a no-op. */
void lk_cnn_free(struct lk_cnn_model *m);

/* Descriptor length in floats (channels of the output layer), e.g. 576. */
size_t lk_cnn_dim(const struct lk_cnn_model *m);

/* Network input size in pixels (224 x 224 for the shipped model). */
void lk_cnn_input_size(const struct lk_cnn_model *m, uint32_t *width, uint32_t *height);

/* Name of the output layer the model was cut at (owned by the model). */
const char *lk_cnn_layer(const struct lk_cnn_model *m);

/* Create a workspace for one thread: builds an XNNPACK runtime (packed
 * weights, activation memory) for `m` and takes a reference on `m`.
 * Errors: LK_ERR_INVALID_ARG, LK_ERR_NOMEM, LK_ERR_MODEL (XNNPACK refused the
 * graph). */
int lk_cnn_workspace_new(struct lk_cnn_model *m, struct lk_cnn_workspace **out, struct lk_err *err);

/* Free the workspace and drop its model reference.  NULL is a no-op. */
void lk_cnn_workspace_free(struct lk_cnn_workspace *ws);

/* Run the network on `input` (height*width*3 floats, HWC, preprocessed as
 * above, caller-owned, no slack needed) and write lk_cnn_dim() floats to
 * `out`.  An INT8 model first rounds the input to its int8 grid, the 256
 * pixel levels (round(127.5 x + 127.5) - 128, clamped), so a normalised
 * image gives exactly what lk_cnn_describe() gives for its pixels.
 * Errors: LK_ERR_INVALID_ARG (NULL, or a non-finite input value),
 * LK_ERR_MODEL (XNNPACK runtime failure).  Cost: 221 M multiply-adds for the
 * default layer, about 12.5 ms of CPU time on one 2.45 GHz EPYC vCPU in
 * FP32, 7.8 ms in INT8 (bench/embed). */
int lk_cnn_forward(struct lk_cnn_workspace *ws, const float *input, float *out, struct lk_err *err);

/* Describe an 8-bit RGB image: resize the whole image to the network input
 * size with lk_image_resize() (aspect ratio not kept, nothing cut off;
 * skipped when it already has that size), normalise to x/127.5-1 and run
 * the network (an INT8 model reads the pixels as int8, no float on the
 * way; the workspace's buffers are used, nothing is allocated for an
 * input-sized image).  bench/embed_quality
 * found no significant difference between this, a centre crop and a white
 * letterbox (grocery recall@1 0.909 / 0.906 / 0.912, fused 0.973 / 0.972 /
 * 0.973), so the cheapest, crop-free one is used.  `img` is not modified.
 * Errors: as lk_cnn_forward() plus those of lk_image_resize(). */
int lk_cnn_describe(struct lk_cnn_workspace *ws, const struct lk_image *img, float *out, struct lk_err *err);

/* ==== Int8 calibration ====
 *
 * Records, for every tensor the int8 graph quantises on a calibrated range,
 * the min and max it takes when the FP32 network runs on calibration images
 * (post-training quantisation, Jacob et al. 2018 section 3 / TFLite's
 * "representative dataset").  models/gen_calibration.sh runs this over the
 * Tux Paint stamp photos (Debian tuxpaint-stamps-default) to make the
 * committed models/mobilenet_v2/calibration.json.  Ranges are recorded for
 * the whole network the model was cut at, so calibrate a model loaded at
 * the deepest layer that will be used (e.g. "out_relu").
 * Thread-safety: one calibrator per thread; the model may be shared. */
struct lk_cnn_calibrator;

/* Calibrator for FP32 model `m` (takes a reference on it).  Errors:
 * LK_ERR_INVALID_ARG (NULL, or `m` is not FP32), LK_ERR_NOMEM, LK_ERR_MODEL. */
int lk_cnn_calibrator_new(struct lk_cnn_model *m, struct lk_cnn_calibrator **out, struct lk_err *err);

/* Run one image (as lk_cnn_describe(): resized to the network input) and
 * widen the recorded ranges.  Errors: as lk_cnn_describe(). */
int lk_cnn_calibrator_add(struct lk_cnn_calibrator *c, const struct lk_image *img, struct lk_err *err);

/* Write the calibration file (JSON) to `path`; `source` is a free-text note
 * of where the images came from.  Errors: LK_ERR_EMPTY (no image added),
 * LK_ERR_IO, LK_ERR_NOMEM. */
int lk_cnn_calibrator_save(const struct lk_cnn_calibrator *c, const char *source, const char *path,
                           struct lk_err *err);

/* NULL is a no-op. */
void lk_cnn_calibrator_free(struct lk_cnn_calibrator *c);

/* ==== Whole-photo analysis (src/embed/describe.c) ====
 *
 * The one analysis path for catalog photos and shopper queries: resize the
 * decoded image once to the network input size (lk_cnn_input_size(), 224 x
 * 224; lk_image_resize_area(), stb_image_resize's box filter in linear
 * light, aspect ratio not kept), then compute from that copy the CNN descriptor (lk_cnn_describe(),
 * lk_cnn_dim(m) floats written to cnn_out) and the colour histogram
 * (lk_colour_embed(), LK_COLOUR_DIM floats written to colour_out).  `ws`
 * must have been created from `m`.  `img` (8-bit RGB, any size >= 1 x 1) is
 * not modified; the outputs are caller-owned.  Thread-safety: as the
 * workspace (one thread at a time per `ws`; `m` is shared read-only).
 * Cost: one resize (~2-5 ms for a 1-megapixel JPEG decoded at 3/8 or 1/2)
 * plus the CNN and the histogram (bench/embed prints each).
 * Errors: LK_ERR_INVALID_ARG (NULL argument), LK_ERR_NOMEM, and those of
 * lk_cnn_describe() and lk_colour_embed(). */
int lk_embed_describe(const struct lk_cnn_model *m, struct lk_cnn_workspace *ws, const struct lk_image *img,
                      float *cnn_out, float *colour_out, struct lk_err *err);

/* ==== Fused product embedding (src/embed/fuse.c) ====
 *
 * The index stores, per product photo,
 *     e = [ sqrt(w) * c ; sqrt(1 - w) * h ]
 * where h is the colour histogram embedding (lk_colour_embed(), unit L2
 * norm, LK_COLOUR_DIM floats) and c is the post-processed CNN descriptor:
 *     c = L2( P * ( L2(ssqrt(raw)) - mean ) )
 * ssqrt(x) = sign(x)*sqrt(|x|) (the "signed square root" / power-law
 * normalisation, Perronnin et al. 2010; Jegou & Chum 2012 for the
 * ssqrt -> L2 -> centre -> PCA-whiten -> L2 pipeline), mean = the catalog
 * mean, P = identity or a PCA-whitening projection to pca_dim dimensions
 * learned from the catalog (eigenvectors of the covariance by LAPACK
 * dsyevd, rows scaled by 1/sqrt(eigenvalue + eps)).
 * Both parts have unit length, so e has unit length and the inner product of
 * two embeddings is  w * cos(c1, c2) + (1 - w) * cos(h1, h2).
 *
 * Thread-safety: params are immutable after learn/load (except
 * lk_embed_params_set_w(), which must not race with readers); lk_embed_fuse()
 * may run concurrently on shared params.
 */

/* Fusion weight w of the CNN part, chosen by bench/embed_quality (tables in
 * models/README.md): the w with the best mean of (score / best score over w)
 * across grocery recall@1, clothing-photos and fashion-small 1-NN category
 * accuracy, among the w whose fused grocery recall@1 beats both parts by at
 * least 0.005.  Colour alone wins same-product recall on grocery (0.948 vs
 * CNN 0.909: same-product photos there are near-duplicates) but is near
 * chance for categories (clothing 0.217 vs CNN 0.447), hence a middle w.
 *   LK_EMBED_W_DEFAULT      without PCA (catalog-free or small catalogs):
 *                           grocery R@1 0.960, clothing 0.407, fashion 0.651;
 *   LK_EMBED_W_DEFAULT_PCA  with PCA-whitening to LK_EMBED_PCA_DEFAULT dims:
 *                           grocery R@1 0.956, clothing 0.483, fashion 0.710. */
#define LK_EMBED_W_DEFAULT 0.5f
#define LK_EMBED_W_DEFAULT_PCA 0.8f
/* Recommended PCA dimension when the catalog has more than this many photos
 * (whitening is learned from the catalog; it needs n > pca_dim).  PCA-128
 * beat no PCA on every set (CNN alone: grocery R@1 0.941 vs 0.909, clothing
 * 0.494 vs 0.447, fashion 0.710 vs 0.684). */
#define LK_EMBED_PCA_DEFAULT 128
#define LK_EMBED_W_MIN 0.0f
#define LK_EMBED_W_MAX 1.0f
/* Upper bound for descriptor and PCA dimensions accepted (a 1280-d
 * MobileNetV2 output is the largest we use; the bound keeps a corrupt params
 * file from asking for gigabytes). */
#define LK_EMBED_DIM_MAX 8192

struct lk_embed_params;

/* Parameters with no catalog statistics: mean 0, no PCA (c = L2(ssqrt(raw))).
 * For describing single images before a catalog exists.  `dim` = raw CNN
 * descriptor length (1..LK_EMBED_DIM_MAX), `w` in [0, 1].
 * Errors: LK_ERR_INVALID_ARG, LK_ERR_NOMEM.  Free with lk_embed_params_free(). */
int lk_embed_params_identity(size_t dim, float w, struct lk_embed_params **out, struct lk_err *err);

/* Learn the mean (and, if pca_dim > 0, a PCA-whitening to pca_dim dims) from
 * `n` raw CNN descriptors (`cnn_descs`, n x dim floats, row-major, as
 * lk_cnn_forward() writes them).  pca_dim = 0 turns PCA off; otherwise
 * 1 <= pca_dim <= dim and pca_dim < n.  Cost: O(n*dim^2) for the covariance
 * plus O(dim^3) for the eigendecomposition (~0.1 s for dim 576).
 * Errors: LK_ERR_EMPTY (n = 0), LK_ERR_INVALID_ARG (bad dim/pca_dim/w, NaN or
 * Inf in the input), LK_ERR_INTERNAL (LAPACK failed to converge), LK_ERR_NOMEM. */
int lk_embed_params_learn(const float *cnn_descs, size_t n, size_t dim, size_t pca_dim, float w,
                          struct lk_embed_params **out, struct lk_err *err);

/* NULL is a no-op. */
void lk_embed_params_free(struct lk_embed_params *p);

/* Save to `path` atomically (temp file, fsync, rename, fsync directory).
 * Format (little-endian): "LKEMBED\0", u32 version (2), u32 cnn_dim,
 * u32 out_dim, u32 colour_dim, u32 flags (bit 0: PCA; bit 1: descriptors
 * from the LK_CNN_INT8 network, version 2 only), f32 w,
 * f32 mean[cnn_dim], f32 proj[out_dim*cnn_dim] if PCA, u32 CRC-32 (IEEE
 * 802.3) of all preceding bytes.  Errors: LK_ERR_INVALID_ARG, LK_ERR_IO. */
int lk_embed_params_save(const struct lk_embed_params *p, const char *path, struct lk_err *err);

/* Load params saved by lk_embed_params_save() (version 1 files, from before
 * the int8 option, load with CNN precision LK_CNN_FP32).  Errors: LK_ERR_IO (cannot
 * open/read), LK_ERR_FORMAT (bad magic, unknown version, colour_dim differs
 * from this build's LK_COLOUR_DIM), LK_ERR_TRUNCATED (file too short),
 * LK_ERR_CORRUPT (sizes inconsistent, trailing bytes, non-finite values),
 * LK_ERR_CHECKSUM, LK_ERR_NOMEM. */
int lk_embed_params_load(const char *path, struct lk_embed_params **out, struct lk_err *err);

/* Raw CNN descriptor length the params expect (lk_cnn_dim()). */
size_t lk_embed_cnn_dim(const struct lk_embed_params *p);
/* Length of the post-processed CNN part (pca_dim, or cnn_dim without PCA). */
size_t lk_embed_cnn_out_dim(const struct lk_embed_params *p);
/* Fused embedding length: lk_embed_cnn_out_dim() + LK_COLOUR_DIM. */
size_t lk_embed_fused_dim(const struct lk_embed_params *p);
/* CNN weight w. */
float lk_embed_w(const struct lk_embed_params *p);
/* Change w (0..1).  Errors: LK_ERR_INVALID_ARG. */
int lk_embed_params_set_w(struct lk_embed_params *p, float w, struct lk_err *err);

/* Precision of the CNN whose descriptors the params were learned from and
 * must post-process (saved with the params, so an index records it): set
 * it to lk_cnn_precision(model) after learn/identity (which default to
 * LK_CNN_FP32), and load the query-time model with the precision
 * lk_embed_cnn_precision() returns.  Errors: LK_ERR_INVALID_ARG. */
int lk_embed_params_set_cnn_precision(struct lk_embed_params *p, enum lk_cnn_precision precision,
                                      struct lk_err *err);
enum lk_cnn_precision lk_embed_cnn_precision(const struct lk_embed_params *p);

/* Post-process one raw CNN descriptor (lk_embed_cnn_dim() floats) into `out`
 * (lk_embed_cnn_out_dim() floats, unit L2 norm, or all zeros if the centred
 * descriptor is zero).  Errors: LK_ERR_INVALID_ARG (NULL, NaN/Inf). */
int lk_embed_cnn_normalize(const struct lk_embed_params *p, const float *cnn_raw, float *out, struct lk_err *err);

/* Fused embedding of one image into `out` (lk_embed_fused_dim() floats).
 * `colour` is LK_COLOUR_DIM floats from lk_colour_embed() (re-normalised
 * here, so any positive scale works).  Errors: LK_ERR_INVALID_ARG. */
int lk_embed_fuse(const struct lk_embed_params *p, const float *cnn_raw, const float *colour, float *out,
                  struct lk_err *err);

#ifdef __cplusplus
}
#endif
#endif /* LOOKALIKE_EMBED_H */
