/* The C ABI's contract, from C: every exported function with each pointer argument NULL,
 * struct_size versioning, image validation, error statuses and messages, all-or-nothing
 * weight loading, outputs written only on success, and the consistency of a result.
 *
 *   abi_test <weights.safetensors> <image.ppm (>= 96x96)> <scratch dir>
 *
 * Run by tests/c_api.rs (under AddressSanitizer). Prints every failed expectation and
 * exits 1 if there was one. tests/c_api.rs checks that every `csra_*` function declared
 * in include/csranet.h is named in this file.
 */

#include <csranet.h>

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
static int checks = 0;

#define EXPECT(cond, ...)                                                    \
  do {                                                                       \
    ++checks;                                                                \
    if (!(cond)) {                                                           \
      ++failures;                                                            \
      fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);    \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
    }                                                                        \
  } while (0)

/* `call` returns `want`; on failure the message contains `needle` (if not NULL); on
 * success the message is "". */
#define EXPECT_STATUS(call, want, needle)                                          \
  expect_status(__LINE__, #call, (call), (want), (needle))

static void expect_status(int line, const char *what, CsraStatus got, CsraStatus want,
                          const char *needle) {
  const char *msg = csra_last_error_message();
  ++checks;
  if (msg == NULL) {
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: %s: csra_last_error_message() is NULL\n", __FILE__, line,
            what);
    return;
  }
  if (got != want) {
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: %s returned %d, expected %d (message: \"%s\")\n", __FILE__,
            line, what, (int)got, (int)want, msg);
  } else if (want == CSRA_OK && msg[0] != '\0') {
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: %s succeeded but the message is \"%s\"\n", __FILE__, line,
            what, msg);
  } else if (want != CSRA_OK && (msg[0] == '\0' || (needle && !strstr(msg, needle)))) {
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: %s: message \"%s\" does not mention \"%s\"\n", __FILE__,
            line, what, msg, needle ? needle : "(anything)");
  } else if (strchr(msg, '\n') != NULL) {
    /* One line, also when RUST_BACKTRACE is set (tests/c_api.rs sets it). */
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: %s: the message is not one line:\n%s\n", __FILE__, line,
            what, msg);
  }
}

/* Stand-ins for handles that must stay untouched when a call fails. */
static char sentinel_storage;
#define SENTINEL ((void *)&sentinel_storage)

/* ---- small helpers ------------------------------------------------------------------ */

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
      free(buf);
      buf = NULL;
    }
    *len = (size_t)n;
  }
  fclose(f);
  return buf;
}

static int write_all(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  int ok;
  if (!f) return 0;
  ok = fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

/* An 8-bit binary PPM without comments (as written by tests/c_api.rs). */
static unsigned char *read_ppm(const char *path, unsigned *w, unsigned *h) {
  size_t len = 0, off;
  unsigned char *file = read_all(path, &len), *pixels;
  unsigned maxval;
  int consumed = 0;
  if (!file) return NULL;
  file[len] = '\0';
  if (sscanf((const char *)file, "P6 %u %u %u%n", w, h, &maxval, &consumed) != 3 ||
      maxval != 255 || consumed <= 0) {
    free(file);
    return NULL;
  }
  off = (size_t)consumed + 1;
  if (len < off || len - off < (size_t)*w * *h * 3) {
    free(file);
    return NULL;
  }
  pixels = malloc((size_t)*w * *h * 3);
  if (pixels) memcpy(pixels, file + off, (size_t)*w * *h * 3);
  free(file);
  return pixels;
}

static CsraImage make_image(const unsigned char *data, unsigned w, unsigned h, size_t stride,
                            uint32_t format) {
  CsraImage im;
  memset(&im, 0, sizeof im);
  im.data = data;
  im.width = w;
  im.height = h;
  im.stride = stride;
  im.len = stride * (h - 1) + (size_t)w * (format == CSRA_PIXEL_RGB8 || format == CSRA_PIXEL_BGR8 ? 3 : 4);
  im.format = format;
  return im;
}

/* Copies a w x h window at (x0, y0) of an RGB image of row stride `src_stride` into a
 * packed buffer of `bpp` bytes per pixel, in the given channel order. */
static unsigned char *crop(const unsigned char *src, size_t src_stride, unsigned x0, unsigned y0,
                           unsigned w, unsigned h, unsigned bpp, int bgr) {
  unsigned char *out = malloc((size_t)w * h * bpp);
  if (!out) return NULL;
  for (unsigned y = 0; y < h; ++y) {
    for (unsigned x = 0; x < w; ++x) {
      const unsigned char *s = src + (size_t)(y0 + y) * src_stride + (size_t)(x0 + x) * 3;
      unsigned char *d = out + ((size_t)y * w + x) * bpp;
      d[0] = bgr ? s[2] : s[0];
      d[1] = s[1];
      d[2] = bgr ? s[0] : s[2];
      if (bpp == 4) d[3] = (unsigned char)(x * 7 + y); /* alpha is ignored */
    }
  }
  return out;
}

/* Segments with defaults; NULL (and a reported failure) on error. */
static CsraSegmentation *segment(const CsraModel *model, const CsraImage *image) {
  CsraSegmentation *seg = NULL;
  EXPECT_STATUS(csra_segment_tile(model, image, NULL, &seg), CSRA_OK, NULL);
  return seg;
}

/* True when two results have identical class maps and label maps. */
static int same_result(const CsraSegmentation *a, const CsraSegmentation *b) {
  const uint8_t *ca, *cb;
  const uint32_t *la, *lb;
  size_t na, nb, ma, mb;
  if (!a || !b) return 0;
  if (csra_segmentation_class_map(a, &ca, &na) || csra_segmentation_class_map(b, &cb, &nb) ||
      csra_segmentation_labels(a, &la, &ma) || csra_segmentation_labels(b, &lb, &mb)) {
    return 0;
  }
  return na == nb && ma == mb && memcmp(ca, cb, na) == 0 && memcmp(la, lb, ma * sizeof *la) == 0;
}

static int32_t cancel_at(void *user_data, uint32_t done, uint32_t total) {
  uint32_t *state = user_data; /* state[0]: cancel when done reaches it; [1]: calls; [2]: last done; [3]: total */
  state[1] += 1;
  state[2] = done;
  state[3] = total;
  return state[0] != 0 && done >= state[0];
}

static void *fail_on_other_thread(void *arg) {
  CsraModelConfig config;
  int ok = csra_model_config_default("no-such-preset", &config) == CSRA_INVALID_ARGUMENT &&
           strstr(csra_last_error_message(), "no-such-preset") != NULL;
  *(int *)arg = ok;
  return NULL;
}

/* ---- the checks -------------------------------------------------------------------- */

static void check_version(void) {
  EXPECT(csra_version() == ((uint32_t)CSRA_VERSION_MAJOR << 16 | (uint32_t)CSRA_VERSION_MINOR << 8 |
                            (uint32_t)CSRA_VERSION_PATCH),
         "csra_version() = 0x%x", (unsigned)csra_version());
  EXPECT(csra_version_string() && strcmp(csra_version_string(), CSRA_VERSION_STRING) == 0,
         "csra_version_string() = %s", csra_version_string());
  EXPECT(csra_last_error_message() && csra_last_error_message()[0] == '\0',
         "no call failed yet, message \"%s\"", csra_last_error_message());
}

static void check_config(void) {
  CsraModelConfig c, before;
  EXPECT_STATUS(csra_model_config_default(NULL, &c), CSRA_OK, NULL);
  EXPECT(c.struct_size == sizeof c && c.depth == 18 && c.width == 0.5f && c.raa != 0 &&
             c.device == CSRA_DEVICE_CPU,
         "NULL preset is lite: size %zu depth %u width %g", c.struct_size, (unsigned)c.depth,
         (double)c.width);
  EXPECT_STATUS(csra_model_config_default("paper", &c), CSRA_OK, NULL);
  EXPECT(c.depth == 50 && c.width == 1.0f, "paper: depth %u width %g", (unsigned)c.depth,
         (double)c.width);
  EXPECT_STATUS(csra_model_config_default("lite", NULL), CSRA_NULL_ARGUMENT, "`out`");
  before = c;
  EXPECT_STATUS(csra_model_config_default("bogus", &c), CSRA_INVALID_ARGUMENT, "bogus");
  EXPECT(memcmp(&c, &before, sizeof c) == 0, "a failed call wrote its output");
  EXPECT_STATUS(csra_model_config_default("\xff\xfe", &c), CSRA_INVALID_ARGUMENT, "UTF-8");
}

static void check_create(void) {
  CsraModelConfig c;
  CsraModel *m = SENTINEL;
  struct {
    CsraModelConfig config;
    unsigned char future_fields[64];
  } bigger;

  EXPECT_STATUS(csra_model_config_default(NULL, &c), CSRA_OK, NULL);
  EXPECT_STATUS(csra_model_create(NULL, &m), CSRA_NULL_ARGUMENT, "`config`");
  EXPECT(m == SENTINEL, "a failed call wrote its output");
  EXPECT_STATUS(csra_model_create(&c, NULL), CSRA_NULL_ARGUMENT, "`out`");

  memset(&bigger, 0, sizeof bigger);
  bigger.config = c;
  bigger.config.struct_size = sizeof c + 8;
  EXPECT_STATUS(csra_model_create(&bigger.config, &m), CSRA_INVALID_ARGUMENT, "struct_size");
  c.struct_size = 0;
  EXPECT_STATUS(csra_model_create(&c, &m), CSRA_INVALID_ARGUMENT, "struct_size");
  c.struct_size = sizeof(size_t) - 1;
  EXPECT_STATUS(csra_model_create(&c, &m), CSRA_INVALID_ARGUMENT, "struct_size");
  EXPECT(m == SENTINEL, "a failed call wrote its output");

  EXPECT_STATUS(csra_model_config_default(NULL, &c), CSRA_OK, NULL);
  c.depth = 19;
  EXPECT_STATUS(csra_model_create(&c, &m), CSRA_INVALID_ARGUMENT, "depth");
  c.depth = 18;
  c.output_stride = 12;
  EXPECT_STATUS(csra_model_create(&c, &m), CSRA_INVALID_ARGUMENT, "output_stride");
  c.output_stride = 8;
  c.width = NAN;
  EXPECT_STATUS(csra_model_create(&c, &m), CSRA_INVALID_ARGUMENT, "width");
  c.width = 0.5f;
  c.device = 7;
  EXPECT_STATUS(csra_model_create(&c, &m), CSRA_INVALID_ARGUMENT, "device");
  EXPECT(m == SENTINEL, "a failed call wrote its output");
  c.device = CSRA_DEVICE_CUDA;
  {
    CsraStatus s = csra_model_create(&c, &m);
    EXPECT(s == CSRA_UNSUPPORTED || s == CSRA_OK, "CUDA model: status %d (%s)", (int)s,
           csra_last_error_message());
    if (s == CSRA_OK) csra_model_free(m);
    m = SENTINEL;
  }

  /* An older caller's shorter struct: the fields it does not know keep the defaults. */
  EXPECT_STATUS(csra_model_config_default(NULL, &c), CSRA_OK, NULL);
  c.struct_size = offsetof(CsraModelConfig, seed);
  c.device = 7; /* beyond struct_size: must be ignored */
  m = NULL;
  EXPECT_STATUS(csra_model_create(&c, &m), CSRA_OK, NULL);
  EXPECT(m != NULL, "no model");
  if (m) {
    CsraModelConfig got;
    EXPECT_STATUS(csra_model_get_config(m, &got), CSRA_OK, NULL);
    EXPECT(got.struct_size == sizeof got && got.depth == 18 && got.device == CSRA_DEVICE_CPU,
           "config of a short-struct model: size %zu depth %u device %u", got.struct_size,
           (unsigned)got.depth, (unsigned)got.device);
  }
  csra_model_free(m);
  csra_model_free(NULL);
}

/* First occurrence of `needle` in `hay[0..n)`, or NULL. */
static unsigned char *find(unsigned char *hay, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; k <= n && i <= n - k; ++i) {
    if (memcmp(hay + i, needle, k) == 0) return hay + i;
  }
  return NULL;
}

/* One tampered copy of a valid weights buffer: refused by load and create with a message
 * containing `needle`. `edit` gets the copy and its header (after the 8-byte length). */
static void expect_refused(CsraModel *model, const unsigned char *bytes, size_t len,
                           const char *what, const char *needle,
                           int (*edit)(unsigned char *copy, size_t len, unsigned char *header,
                                       size_t header_len)) {
  unsigned char *copy = malloc(len);
  uint64_t header_len = 0;
  CsraModel *m = SENTINEL;
  if (!copy) return;
  memcpy(copy, bytes, len);
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | copy[i];
  if (header_len > len - 8 || !edit(copy, len, copy + 8, (size_t)header_len)) {
    EXPECT(0, "%s: the weights file has no place to tamper with", what);
    free(copy);
    return;
  }
  printf("abi_test: tampered weights: %s\n", what);
  EXPECT_STATUS(csra_model_load_safetensors_buffer(model, copy, len), CSRA_BAD_WEIGHTS, needle);
  EXPECT_STATUS(csra_model_create_from_safetensors_buffer(copy, len, &m), CSRA_BAD_WEIGHTS,
                needle);
  EXPECT(m == SENTINEL, "%s: a failed call wrote its output", what);
  free(copy);
}

static int huge_header_length(unsigned char *c, size_t n, unsigned char *h, size_t hl) {
  (void)n, (void)h, (void)hl;
  memset(c, 0xff, 8); /* UINT64_MAX */
  return 1;
}

static int header_past_the_end(unsigned char *c, size_t n, unsigned char *h, size_t hl) {
  uint64_t v = (uint64_t)n;
  (void)h, (void)hl;
  for (int i = 0; i < 8; ++i) c[i] = (unsigned char)(v >> (8 * i));
  return 1;
}

static int dtype_i32(unsigned char *c, size_t n, unsigned char *h, size_t hl) {
  unsigned char *p = find(h, hl, "\"F32\"");
  (void)c, (void)n;
  if (p) p[1] = 'I';
  return p != NULL;
}

static int absurd_offset(unsigned char *c, size_t n, unsigned char *h, size_t hl) {
  const char key[] = "\"data_offsets\":[";
  unsigned char *p = find(h, hl, key);
  (void)c, (void)n;
  if (!p) return 0;
  for (p += sizeof key - 1; p < h + hl && *p >= '0' && *p <= '9'; ++p) *p = '9';
  return 1;
}

static int absurd_shape(unsigned char *c, size_t n, unsigned char *h, size_t hl) {
  const char key[] = "\"shape\":[";
  unsigned char *p = find(h, hl, key);
  (void)c, (void)n;
  if (!p) return 0;
  for (p += sizeof key - 1; p < h + hl && *p >= '0' && *p <= '9'; ++p) *p = '9';
  return 1;
}

static int renamed_tensor(unsigned char *c, size_t n, unsigned char *h, size_t hl) {
  unsigned char *p = find(h, hl, ".weight\"");
  (void)c, (void)n;
  if (p) p[6] = 'x'; /* `.weighx`: one tensor missing, one unknown */
  return p != NULL;
}

static int header_not_json(unsigned char *c, size_t n, unsigned char *h, size_t hl) {
  (void)c, (void)n;
  h[hl / 2] = '\xff';
  return 1;
}

/* A valid weights file tampered with in ways a damaged or hostile file could be: every
 * one refused whole (the caller then checks the model segments as before). */
static void check_tampered_weights(CsraModel *model, const unsigned char *bytes, size_t len) {
  expect_refused(model, bytes, len, "header length UINT64_MAX", "safetensors",
                 huge_header_length);
  expect_refused(model, bytes, len, "header length past the end", "safetensors",
                 header_past_the_end);
  expect_refused(model, bytes, len, "a tensor's dtype F32 -> I32", "dtype", dtype_i32);
  expect_refused(model, bytes, len, "a tensor's data offset 9...9", "safetensors",
                 absurd_offset);
  expect_refused(model, bytes, len, "a tensor's first dimension 9...9", "safetensors",
                 absurd_shape);
  expect_refused(model, bytes, len, "a tensor renamed", "lacks tensor", renamed_tensor);
  expect_refused(model, bytes, len, "a byte 0xff in the JSON header", "safetensors",
                 header_not_json);
}

/* csra_model_create_default: the bundled model, or CSRA_NOT_AVAILABLE in a build without it. */
static void check_default_model(const CsraImage *image) {
  CsraModel *m = SENTINEL;
  CsraStatus s;
  EXPECT_STATUS(csra_model_create_default(NULL), CSRA_NULL_ARGUMENT, "`out`");
  s = csra_model_create_default(&m);
  if (s == CSRA_NOT_AVAILABLE) {
    EXPECT(m == SENTINEL, "a failed call wrote its output");
    EXPECT(strstr(csra_last_error_message(), "bundled") != NULL, "message \"%s\"",
           csra_last_error_message());
    return;
  }
  EXPECT_STATUS(s, CSRA_OK, NULL);
  if (s != CSRA_OK) return;
  {
    CsraModelConfig c;
    CsraSegmentation *seg = segment(m, image);
    EXPECT_STATUS(csra_model_get_config(m, &c), CSRA_OK, NULL);
    EXPECT(c.depth == 18 && c.num_classes == 5, "bundled model: depth %u, %u classes",
           (unsigned)c.depth, (unsigned)c.num_classes);
    csra_segmentation_free(seg);
  }
  csra_model_free(m);
}

static void check_files(const char *weights, const char *dir, const CsraImage *image) {
  char missing[4096], garbage[4096], empty[4096], saved[4096], other[4096], bad_dir[4096];
  const char junk[] = "this is not a safetensors file, just some bytes";
  unsigned char *bytes;
  size_t len = 0;
  CsraModel *m = SENTINEL, *model = NULL, *copy = NULL;
  CsraSegmentation *before = NULL, *after = NULL;

  snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
  snprintf(garbage, sizeof garbage, "%s/garbage.safetensors", dir);
  snprintf(empty, sizeof empty, "%s/empty.safetensors", dir);
  snprintf(saved, sizeof saved, "%s/saved.safetensors", dir);
  snprintf(other, sizeof other, "%s/six_classes.safetensors", dir);
  snprintf(bad_dir, sizeof bad_dir, "%s/no/such/dir/w.safetensors", dir);
  EXPECT(write_all(garbage, junk, sizeof junk - 1), "cannot write %s", garbage);
  EXPECT(write_all(empty, "", 0), "cannot write %s", empty);

  /* csra_model_create_from_safetensors */
  EXPECT_STATUS(csra_model_create_from_safetensors(NULL, &m), CSRA_NULL_ARGUMENT, "`path`");
  EXPECT_STATUS(csra_model_create_from_safetensors(weights, NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT_STATUS(csra_model_create_from_safetensors(missing, &m), CSRA_IO_ERROR,
                "missing.safetensors");
  EXPECT_STATUS(csra_model_create_from_safetensors(garbage, &m), CSRA_BAD_WEIGHTS, NULL);
  EXPECT_STATUS(csra_model_create_from_safetensors(empty, &m), CSRA_BAD_WEIGHTS, NULL);
  EXPECT_STATUS(csra_model_create_from_safetensors("\xff.safetensors", &m),
                CSRA_INVALID_ARGUMENT, "UTF-8");
  EXPECT(m == SENTINEL, "a failed call wrote its output");
  EXPECT_STATUS(csra_model_create_from_safetensors(weights, &model), CSRA_OK, NULL);
  if (!model) return;
  before = segment(model, image);

  /* csra_model_create_from_safetensors_buffer */
  bytes = read_all(weights, &len);
  EXPECT(bytes != NULL, "cannot read %s", weights);
  if (bytes) {
    EXPECT_STATUS(csra_model_create_from_safetensors_buffer(NULL, len, &m), CSRA_NULL_ARGUMENT,
                  "`data`");
    EXPECT_STATUS(csra_model_create_from_safetensors_buffer(bytes, len, NULL),
                  CSRA_NULL_ARGUMENT, "`out`");
    EXPECT_STATUS(csra_model_create_from_safetensors_buffer((const uint8_t *)junk, sizeof junk,
                                                            &m),
                  CSRA_BAD_WEIGHTS, NULL);
    EXPECT_STATUS(csra_model_create_from_safetensors_buffer(bytes, len / 2, &m),
                  CSRA_BAD_WEIGHTS, NULL);
    EXPECT_STATUS(csra_model_create_from_safetensors_buffer(bytes, 0, &m), CSRA_BAD_WEIGHTS,
                  NULL);
    EXPECT(m == SENTINEL, "a failed call wrote its output");
    EXPECT_STATUS(csra_model_create_from_safetensors_buffer(bytes, len, &copy), CSRA_OK, NULL);
    if (copy) {
      after = segment(copy, image);
      EXPECT(same_result(before, after), "a model from a buffer segments differently");
      csra_segmentation_free(after);
      after = NULL;
    }
  }

  /* csra_model_load_safetensors: errors leave the weights as they were. */
  EXPECT_STATUS(csra_model_load_safetensors(NULL, weights), CSRA_NULL_ARGUMENT, "`model`");
  EXPECT_STATUS(csra_model_load_safetensors(model, NULL), CSRA_NULL_ARGUMENT, "`path`");
  EXPECT_STATUS(csra_model_load_safetensors(model, missing), CSRA_IO_ERROR,
                "missing.safetensors");
  EXPECT_STATUS(csra_model_load_safetensors(model, garbage), CSRA_BAD_WEIGHTS, NULL);
  {
    /* Weights of another shape (6 classes): refused before anything is replaced. */
    CsraModelConfig c;
    CsraModel *six = NULL;
    EXPECT_STATUS(csra_model_config_default(NULL, &c), CSRA_OK, NULL);
    c.num_classes = 6;
    c.seed = 7;
    EXPECT_STATUS(csra_model_create(&c, &six), CSRA_OK, NULL);
    EXPECT_STATUS(csra_model_save_safetensors(six, other), CSRA_OK, NULL);
    csra_model_free(six);
    EXPECT_STATUS(csra_model_load_safetensors(model, other), CSRA_BAD_WEIGHTS, NULL);
  }
  after = segment(model, image);
  EXPECT(same_result(before, after), "failed loads changed the model");
  csra_segmentation_free(after);
  after = NULL;

  /* csra_model_load_safetensors_buffer */
  EXPECT_STATUS(csra_model_load_safetensors_buffer(NULL, bytes, len), CSRA_NULL_ARGUMENT,
                "`model`");
  EXPECT_STATUS(csra_model_load_safetensors_buffer(model, NULL, len), CSRA_NULL_ARGUMENT,
                "`data`");
  EXPECT_STATUS(csra_model_load_safetensors_buffer(model, (const uint8_t *)junk, sizeof junk),
                CSRA_BAD_WEIGHTS, NULL);
  if (bytes) {
    EXPECT_STATUS(csra_model_load_safetensors_buffer(model, bytes, len - 1), CSRA_BAD_WEIGHTS,
                  NULL);
    /* The last float of the last tensor made NaN: refused whole. */
    {
      unsigned char saved_tail[4];
      memcpy(saved_tail, bytes + len - 4, 4);
      memset(bytes + len - 4, 0xff, 4);
      EXPECT_STATUS(csra_model_load_safetensors_buffer(model, bytes, len), CSRA_BAD_WEIGHTS,
                    "NaN");
      memcpy(bytes + len - 4, saved_tail, 4);
    }
    check_tampered_weights(model, bytes, len);
  }
  after = segment(model, image);
  EXPECT(same_result(before, after), "failed buffer loads changed the model");
  csra_segmentation_free(after);
  after = NULL;
  if (bytes) {
    EXPECT_STATUS(csra_model_load_safetensors_buffer(model, bytes, len), CSRA_OK, NULL);
  }
  EXPECT_STATUS(csra_model_load_safetensors(model, weights), CSRA_OK, NULL);

  /* csra_model_save_safetensors round trip */
  EXPECT_STATUS(csra_model_save_safetensors(NULL, saved), CSRA_NULL_ARGUMENT, "`model`");
  EXPECT_STATUS(csra_model_save_safetensors(model, NULL), CSRA_NULL_ARGUMENT, "`path`");
  EXPECT_STATUS(csra_model_save_safetensors(model, bad_dir), CSRA_IO_ERROR, NULL);
  EXPECT_STATUS(csra_model_save_safetensors(model, saved), CSRA_OK, NULL);
  csra_model_free(copy);
  copy = NULL;
  EXPECT_STATUS(csra_model_create_from_safetensors(saved, &copy), CSRA_OK, NULL);
  if (copy) {
    after = segment(copy, image);
    EXPECT(same_result(before, after), "the saved and reloaded model segments differently");
    csra_segmentation_free(after);
  }

  /* csra_model_get_config */
  {
    CsraModelConfig got;
    EXPECT_STATUS(csra_model_get_config(NULL, &got), CSRA_NULL_ARGUMENT, "`model`");
    EXPECT_STATUS(csra_model_get_config(model, NULL), CSRA_NULL_ARGUMENT, "`out`");
    EXPECT_STATUS(csra_model_get_config(model, &got), CSRA_OK, NULL);
    EXPECT(got.struct_size == sizeof got && got.depth == 18 && got.num_classes >= 2,
           "config: size %zu depth %u classes %u", got.struct_size, (unsigned)got.depth,
           (unsigned)got.num_classes);
  }

  free(bytes);
  csra_segmentation_free(before);
  csra_model_free(copy);
  csra_model_free(model);
}

static void check_images(const CsraModel *model, const unsigned char *rgb, unsigned w,
                         unsigned h) {
  const size_t stride = (size_t)w * 3;
  /* A 64x64 window at (16, 24) read in place through the stride, and packed copies of it
   * in every pixel format: all must give the same result. */
  const unsigned char *window = rgb + 24 * stride + 16 * 3;
  unsigned char *packed = crop(rgb, stride, 16, 24, 64, 64, 3, 0);
  unsigned char *bgr = crop(rgb, stride, 16, 24, 64, 64, 3, 1);
  unsigned char *rgba = crop(rgb, stride, 16, 24, 64, 64, 4, 0);
  unsigned char *bgra = crop(rgb, stride, 16, 24, 64, 64, 4, 1);
  CsraImage im = make_image(window, 64, 64, stride, CSRA_PIXEL_RGB8), bad;
  CsraSegmentation *seg = SENTINEL, *ref = NULL;
  CsraSegmentOptions o;
  struct {
    CsraSegmentOptions options;
    unsigned char future_fields[64];
  } bigger;
  (void)h;

  EXPECT(packed && bgr && rgba && bgra, "out of memory");
  if (!packed || !bgr || !rgba || !bgra) goto done;

  /* NULL arguments */
  EXPECT_STATUS(csra_segment_tile(NULL, &im, NULL, &seg), CSRA_NULL_ARGUMENT, "`model`");
  EXPECT_STATUS(csra_segment_tile(model, NULL, NULL, &seg), CSRA_NULL_ARGUMENT, "`image`");
  EXPECT_STATUS(csra_segment_tile(model, &im, NULL, NULL), CSRA_NULL_ARGUMENT, "`out`");
  bad = im;
  bad.data = NULL;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_NULL_ARGUMENT, "`image->data`");

  /* Bad images */
  bad = im;
  bad.width = 0;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "0x64");
  bad = im;
  bad.height = 0;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "64x0");
  bad = im;
  bad.width = 31;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "31x64");
  bad = im;
  bad.width = 4096;
  bad.stride = 4096 * 3;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "bytes");
  {
    /* Wider than a tile (2048) with a buffer that holds it: csra_segment_image's job. */
    unsigned char *wide = calloc((size_t)2049 * 3, 32);
    EXPECT(wide != NULL, "out of memory");
    if (wide) {
      bad = make_image(wide, 2049, 32, (size_t)2049 * 3, CSRA_PIXEL_RGB8);
      EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "2048");
      free(wide);
    }
  }
  bad = im;
  bad.stride = 64 * 3 - 1;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "stride");
  bad = im;
  bad.len -= 1;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "bytes");
  bad = im;
  bad.len = SIZE_MAX;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "len");
  bad = im;
  bad.format = 4;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "format");
  bad = make_image(packed, 64, 64, 64 * 3, CSRA_PIXEL_RGB8);
  bad.format = CSRA_PIXEL_RGBA8; /* 3-byte rows read as 4-byte pixels */
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "stride");
  EXPECT(seg == SENTINEL, "a failed call wrote its output");

  /* Hostile geometry (issue 8): sizes past the limits, strides and lengths whose products
   * overflow, buffers shorter than stated; each refused before any pixel is read. */
  bad = im;
  bad.width = UINT32_MAX;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "refused");
  bad.height = UINT32_MAX;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "refused");
  EXPECT_STATUS(csra_segment_image(model, &bad, NULL, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "refused");
  bad = im;
  bad.width = 1u << 20;
  bad.height = 1u << 20;
  bad.stride = (size_t)3 << 20; /* 3 TiB described, 12 KiB real */
  EXPECT_STATUS(csra_segment_image(model, &bad, NULL, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "bytes");
  bad = im;
  bad.stride = SIZE_MAX / 2; /* stride * (height - 1) overflows */
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "overflows");
  EXPECT_STATUS(csra_segment_image(model, &bad, NULL, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "overflows");
  bad = im;
  bad.stride = SIZE_MAX;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "overflows");
  bad = im;
  bad.stride = 0;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "stride");
  bad = im;
  bad.len = 0;
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "bytes");
  bad = im;
  bad.len = bad.stride * (bad.height - 1); /* the last row missing */
  EXPECT_STATUS(csra_segment_tile(model, &bad, NULL, &seg), CSRA_INVALID_ARGUMENT, "bytes");
  EXPECT_STATUS(csra_segment_image(model, &bad, NULL, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "bytes");
  bad = im;
  bad.format = UINT32_MAX;
  EXPECT_STATUS(csra_segment_image(model, &bad, NULL, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "format");
  EXPECT(seg == SENTINEL, "a failed call wrote its output");

  /* Options */
  EXPECT_STATUS(csra_segment_options_default(NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT_STATUS(csra_segment_options_default(&o), CSRA_OK, NULL);
  /* overlap 0: the model's own (64 px for the bundled seed-style model). */
  EXPECT(o.struct_size == sizeof o && o.tile_size == 512 && o.overlap == 0 &&
             o.batch_size == 2 && o.keep_probabilities == 1,
         "default options: size %zu tile %u overlap %u batch %u keep %u", o.struct_size,
         (unsigned)o.tile_size, (unsigned)o.overlap, (unsigned)o.batch_size,
         (unsigned)o.keep_probabilities);
  memset(&bigger, 0, sizeof bigger);
  bigger.options = o;
  bigger.options.struct_size = sizeof o + 4;
  EXPECT_STATUS(csra_segment_tile(model, &im, &bigger.options, &seg), CSRA_INVALID_ARGUMENT,
                "struct_size");
  o.struct_size = 2;
  EXPECT_STATUS(csra_segment_tile(model, &im, &o, &seg), CSRA_INVALID_ARGUMENT, "struct_size");
  EXPECT_STATUS(csra_segment_options_default(&o), CSRA_OK, NULL);
  o.std[1] = 0.0f;
  EXPECT_STATUS(csra_segment_tile(model, &im, &o, &seg), CSRA_INVALID_ARGUMENT, "std");
  EXPECT_STATUS(csra_segment_options_default(&o), CSRA_OK, NULL);
  o.sigma = NAN;
  EXPECT_STATUS(csra_segment_tile(model, &im, &o, &seg), CSRA_INVALID_ARGUMENT, "sigma");
  EXPECT_STATUS(csra_segment_options_default(&o), CSRA_OK, NULL);
  o.std[2] = 1e-40f; /* (1 - mean) / std overflows to infinity */
  EXPECT_STATUS(csra_segment_tile(model, &im, &o, &seg), CSRA_INVALID_ARGUMENT, "f32 range");
  EXPECT_STATUS(csra_segment_options_default(&o), CSRA_OK, NULL);
  o.mean[0] = INFINITY;
  EXPECT_STATUS(csra_segment_image(model, &im, &o, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "mean");
  EXPECT(seg == SENTINEL, "a failed call wrote its output");

  /* Stride, packing and channel order do not change the result. */
  ref = segment(model, &im);
  {
    CsraImage v[4];
    const char *names[4] = {"packed RGB8", "BGR8", "RGBA8", "BGRA8"};
    v[0] = make_image(packed, 64, 64, 64 * 3, CSRA_PIXEL_RGB8);
    v[1] = make_image(bgr, 64, 64, 64 * 3, CSRA_PIXEL_BGR8);
    v[2] = make_image(rgba, 64, 64, 64 * 4, CSRA_PIXEL_RGBA8);
    v[3] = make_image(bgra, 64, 64, 64 * 4, CSRA_PIXEL_BGRA8);
    for (int i = 0; i < 4; ++i) {
      CsraSegmentation *s = segment(model, &v[i]);
      EXPECT(same_result(ref, s), "%s differs from the strided RGB8 window", names[i]);
      csra_segmentation_free(s);
    }
  }

  /* A shorter options struct (an older caller): later fields keep the defaults. */
  EXPECT_STATUS(csra_segment_options_default(&o), CSRA_OK, NULL);
  o.struct_size = offsetof(CsraSegmentOptions, tile_size);
  o.keep_probabilities = 0; /* beyond struct_size: ignored, probabilities kept */
  seg = NULL;
  EXPECT_STATUS(csra_segment_tile(model, &im, &o, &seg), CSRA_OK, NULL);
  if (seg) {
    const float *p;
    size_t n;
    EXPECT_STATUS(csra_segmentation_probabilities(seg, &p, &n), CSRA_OK, NULL);
    EXPECT(same_result(ref, seg), "a short options struct changed the result");
  }
  csra_segmentation_free(seg);

done:
  csra_segmentation_free(ref);
  free(packed);
  free(bgr);
  free(rgba);
  free(bgra);
}

static void check_segment_image(const CsraModel *model, const unsigned char *rgb, unsigned w) {
  /* 96x96 by 64-pixel tiles with 16 overlap, one per batch: 4 tiles. */
  CsraImage im = make_image(rgb, 96, 96, (size_t)w * 3, CSRA_PIXEL_RGB8);
  CsraSegmentOptions o;
  CsraSegmentation *seg = SENTINEL;
  uint32_t state[4] = {0, 0, 0, 0};

  EXPECT_STATUS(csra_segment_options_default(&o), CSRA_OK, NULL);
  o.tile_size = 64;
  o.overlap = 16;
  o.batch_size = 1;
  EXPECT_STATUS(csra_segment_image(NULL, &im, &o, NULL, NULL, &seg), CSRA_NULL_ARGUMENT,
                "`model`");
  EXPECT_STATUS(csra_segment_image(model, NULL, &o, NULL, NULL, &seg), CSRA_NULL_ARGUMENT,
                "`image`");
  EXPECT_STATUS(csra_segment_image(model, &im, &o, NULL, NULL, NULL), CSRA_NULL_ARGUMENT,
                "`out`");
  {
    CsraImage bad = im;
    bad.data = NULL;
    EXPECT_STATUS(csra_segment_image(model, &bad, &o, NULL, NULL, &seg), CSRA_NULL_ARGUMENT,
                  "`image->data`");
    bad = im;
    bad.stride = 10;
    EXPECT_STATUS(csra_segment_image(model, &bad, &o, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                  "stride");
  }
  o.tile_size = 32;
  EXPECT_STATUS(csra_segment_image(model, &im, &o, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "tile_size");
  o.tile_size = 64;
  o.overlap = 33; /* more than half the tile */
  EXPECT_STATUS(csra_segment_image(model, &im, &o, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "overlap");
  o.overlap = 16;
  o.batch_size = 0;
  EXPECT_STATUS(csra_segment_image(model, &im, &o, NULL, NULL, &seg), CSRA_INVALID_ARGUMENT,
                "batch_size");
  o.batch_size = 1;

  /* Cancelled after the second tile: CSRA_CANCELLED, no output. */
  state[0] = 2;
  EXPECT_STATUS(csra_segment_image(model, &im, &o, cancel_at, state, &seg), CSRA_CANCELLED,
                "cancel");
  EXPECT(seg == SENTINEL, "a cancelled call wrote its output");
  EXPECT(state[1] == 2 && state[2] == 2 && state[3] == 4,
         "cancel: %u calls, last done %u of %u (expected 2 calls, 2 of 4)", (unsigned)state[1],
         (unsigned)state[2], (unsigned)state[3]);

  /* To the end with progress, probabilities off. */
  memset(state, 0, sizeof state);
  o.keep_probabilities = 0;
  seg = NULL;
  EXPECT_STATUS(csra_segment_image(model, &im, &o, cancel_at, state, &seg), CSRA_OK, NULL);
  EXPECT(state[1] == 4 && state[2] == 4 && state[3] == 4, "progress: %u calls, last %u of %u",
         (unsigned)state[1], (unsigned)state[2], (unsigned)state[3]);
  if (seg) {
    const float *p = (const float *)SENTINEL;
    size_t n = 12345;
    uint32_t sw = 0, sh = 0;
    EXPECT_STATUS(csra_segmentation_probabilities(seg, &p, &n), CSRA_NOT_AVAILABLE,
                  "keep_probabilities");
    EXPECT(p == (const float *)SENTINEL && n == 12345, "a failed call wrote its output");
    EXPECT_STATUS(csra_segmentation_size(seg, &sw, &sh, NULL), CSRA_OK, NULL);
    EXPECT(sw == 96 && sh == 96, "tiled result is %ux%u", (unsigned)sw, (unsigned)sh);
  }
  csra_segmentation_free(seg);

  /* Without a callback. */
  seg = NULL;
  EXPECT_STATUS(csra_segment_image(model, &im, NULL, NULL, NULL, &seg), CSRA_OK, NULL);
  csra_segmentation_free(seg);
}

/* Accessors: NULL arguments, and a result that holds together. */
static void check_result(const CsraModel *model, const CsraImage *image) {
  CsraSegmentation *seg = segment(model, image);
  uint32_t w = 0, h = 0, nc = 0;
  const uint8_t *cls = (const uint8_t *)SENTINEL;
  const uint32_t *labels = (const uint32_t *)SENTINEL;
  const float *probs = (const float *)SENTINEL;
  size_t len = 0, n = 0, plen = 0, llen = 0;
  CsraInstance inst;
  uint32_t *counts = NULL;

  EXPECT_STATUS(csra_segmentation_size(NULL, &w, &h, &nc), CSRA_NULL_ARGUMENT, "`seg`");
  EXPECT_STATUS(csra_segmentation_class_map(NULL, &cls, &len), CSRA_NULL_ARGUMENT, "`seg`");
  EXPECT_STATUS(csra_segmentation_class_map(seg, NULL, &len), CSRA_NULL_ARGUMENT, "`data`");
  EXPECT_STATUS(csra_segmentation_class_map(seg, &cls, NULL), CSRA_NULL_ARGUMENT, "`len`");
  EXPECT_STATUS(csra_segmentation_probabilities(NULL, &probs, &len), CSRA_NULL_ARGUMENT,
                "`seg`");
  EXPECT_STATUS(csra_segmentation_probabilities(seg, NULL, &len), CSRA_NULL_ARGUMENT, "`data`");
  EXPECT_STATUS(csra_segmentation_probabilities(seg, &probs, NULL), CSRA_NULL_ARGUMENT, "`len`");
  EXPECT_STATUS(csra_segmentation_labels(NULL, &labels, &len), CSRA_NULL_ARGUMENT, "`seg`");
  EXPECT_STATUS(csra_segmentation_labels(seg, NULL, &len), CSRA_NULL_ARGUMENT, "`data`");
  EXPECT_STATUS(csra_segmentation_labels(seg, &labels, NULL), CSRA_NULL_ARGUMENT, "`len`");
  EXPECT_STATUS(csra_segmentation_num_instances(NULL, &n), CSRA_NULL_ARGUMENT, "`seg`");
  EXPECT_STATUS(csra_segmentation_num_instances(seg, NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT_STATUS(csra_segmentation_instance(NULL, 0, &inst), CSRA_NULL_ARGUMENT, "`seg`");
  EXPECT_STATUS(csra_segmentation_instance(seg, 0, NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT(cls == (const uint8_t *)SENTINEL && labels == (const uint32_t *)SENTINEL &&
             probs == (const float *)SENTINEL && len == 0 && n == 0,
         "a failed call wrote its output");
  csra_segmentation_free(NULL);
  if (!seg) return;

  /* Any output of csra_segmentation_size may be NULL. */
  EXPECT_STATUS(csra_segmentation_size(seg, NULL, NULL, NULL), CSRA_OK, NULL);
  EXPECT_STATUS(csra_segmentation_size(seg, &w, &h, &nc), CSRA_OK, NULL);
  EXPECT(w == image->width && h == image->height && nc >= 2, "size %ux%u, %u classes",
         (unsigned)w, (unsigned)h, (unsigned)nc);
  EXPECT_STATUS(csra_segmentation_class_map(seg, &cls, &len), CSRA_OK, NULL);
  EXPECT(len == (size_t)w * h, "class map holds %zu values", len);
  EXPECT_STATUS(csra_segmentation_labels(seg, &labels, &llen), CSRA_OK, NULL);
  EXPECT(llen == (size_t)w * h, "label map holds %zu values", llen);
  EXPECT_STATUS(csra_segmentation_probabilities(seg, &probs, &plen), CSRA_OK, NULL);
  EXPECT(plen == (size_t)nc * w * h, "probabilities hold %zu values", plen);
  EXPECT_STATUS(csra_segmentation_num_instances(seg, &n), CSRA_OK, NULL);
  printf("abi_test: %ux%u result, %u classes, %zu instances\n", (unsigned)w, (unsigned)h,
         (unsigned)nc, n);
  EXPECT_STATUS(csra_segmentation_instance(seg, n, &inst), CSRA_INVALID_ARGUMENT, "out of range");
  EXPECT_STATUS(csra_segmentation_instance(seg, (size_t)-1, &inst), CSRA_INVALID_ARGUMENT,
                "out of range");
  if (len != (size_t)w * h || llen != len || plen != (size_t)nc * len) goto done;

  /* Probabilities sum to one; the class map is their argmax. */
  {
    size_t bad_sum = 0, bad_argmax = 0;
    for (size_t i = 0; i < len; ++i) {
      float sum = 0, best = -1;
      for (uint32_t k = 0; k < nc; ++k) {
        float p = probs[(size_t)k * len + i];
        sum += p;
        if (p > best) best = p;
      }
      if (fabsf(sum - 1.0f) > 1e-3f) ++bad_sum;
      if (cls[i] >= nc || probs[(size_t)cls[i] * len + i] < best - 1e-6f) ++bad_argmax;
    }
    EXPECT(bad_sum == 0, "%zu pixels' probabilities do not sum to 1", bad_sum);
    EXPECT(bad_argmax == 0, "%zu pixels' class is not the argmax", bad_argmax);
  }

  /* Instances: ids 1..n in order, areas and bounding boxes match the label map. */
  counts = calloc(n + 1, sizeof *counts);
  if (!counts) goto done;
  {
    size_t bad_labels = 0;
    for (size_t i = 0; i < llen; ++i) {
      if (labels[i] <= n) {
        ++counts[labels[i]];
      } else {
        ++bad_labels;
      }
    }
    EXPECT(bad_labels == 0, "%zu labels exceed the %zu instances", bad_labels, n);
  }
  for (size_t i = 0; i < n; ++i) {
    uint32_t x0 = w, y0 = h, x1 = 0, y1 = 0;
    EXPECT_STATUS(csra_segmentation_instance(seg, i, &inst), CSRA_OK, NULL);
    EXPECT(inst.id == i + 1, "instance %zu has id %u", i, (unsigned)inst.id);
    EXPECT(inst.class_id >= 1 && inst.class_id < nc, "instance %zu has class %u", i,
           (unsigned)inst.class_id);
    EXPECT(inst.area == counts[inst.id <= n ? inst.id : 0],
           "instance %u: area %u, label map has %u pixels", (unsigned)inst.id,
           (unsigned)inst.area, (unsigned)counts[inst.id <= n ? inst.id : 0]);
    EXPECT(inst.score >= 0.0f && inst.score <= 1.0f, "instance %u: score %g", (unsigned)inst.id,
           (double)inst.score);
    for (uint32_t y = 0; y < h; ++y) {
      for (uint32_t x = 0; x < w; ++x) {
        if (labels[(size_t)y * w + x] != inst.id) continue;
        if (x < x0) x0 = x;
        if (y < y0) y0 = y;
        if (x + 1 > x1) x1 = x + 1;
        if (y + 1 > y1) y1 = y + 1;
      }
    }
    EXPECT(inst.bbox_x0 == x0 && inst.bbox_y0 == y0 && inst.bbox_x1 == x1 && inst.bbox_y1 == y1,
           "instance %u: bbox [%u,%u)x[%u,%u), label map [%u,%u)x[%u,%u)", (unsigned)inst.id,
           (unsigned)inst.bbox_x0, (unsigned)inst.bbox_x1, (unsigned)inst.bbox_y0,
           (unsigned)inst.bbox_y1, (unsigned)x0, (unsigned)x1, (unsigned)y0, (unsigned)y1);
    EXPECT(inst.centroid_x >= (float)x0 && inst.centroid_x <= (float)x1 &&
               inst.centroid_y >= (float)y0 && inst.centroid_y <= (float)y1,
           "instance %u: centroid (%g, %g) outside its bbox", (unsigned)inst.id,
           (double)inst.centroid_x, (double)inst.centroid_y);
    EXPECT(inst.polygon != NULL && inst.polygon_len >= 3, "instance %u: polygon of %zu points",
           (unsigned)inst.id, inst.polygon_len);
    for (size_t k = 0; inst.polygon && k < inst.polygon_len; ++k) {
      float px = inst.polygon[2 * k], py = inst.polygon[2 * k + 1];
      if (px < (float)x0 || px > (float)x1 || py < (float)y0 || py > (float)y1) {
        EXPECT(0, "instance %u: polygon point (%g, %g) outside its bbox", (unsigned)inst.id,
               (double)px, (double)py);
        break;
      }
    }
  }

done:
  free(counts);
  csra_segmentation_free(seg);
}

static void check_thread_local_errors(void) {
  pthread_t t;
  int other_ok = 0;
  CsraModelConfig c;
  EXPECT_STATUS(csra_model_config_default(NULL, NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT(pthread_create(&t, NULL, fail_on_other_thread, &other_ok) == 0, "pthread_create");
  pthread_join(t, NULL);
  EXPECT(other_ok, "the other thread did not see its own error");
  EXPECT(strstr(csra_last_error_message(), "`out`") != NULL,
         "another thread's failure replaced this thread's message: \"%s\"",
         csra_last_error_message());
  EXPECT_STATUS(csra_model_config_default(NULL, &c), CSRA_OK, NULL);
}

/* Training ABI: trainer and CAS sampler. One small supervised step; checkpoints restore the
 * sampler's state. Uses its own model so the other checks see fixed weights. */
static void check_training(const char *dir, const unsigned char *rgb, unsigned w) {
  char ckpt[4096], missing[4096], garbage[4096], bad_dir[4096];
  const char junk[] = "not a checkpoint";
  const size_t stride = (size_t)w * 3;
  CsraModelConfig mc;
  CsraModel *model = NULL;
  CsraTrainConfig tc, short_tc;
  CsraTrainer *trainer = SENTINEL;
  CsraSampler *sampler = SENTINEL;
  CsraImage images[2], bad_images[2];
  unsigned char *labels[2] = {NULL, NULL};
  const uint8_t *label_ptrs[2], *bad_label_ptrs[2];
  CsraTrainBatch batch, bad;
  CsraStepReport report;
  uint8_t presence[4 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0};
  int32_t tissues[4] = {0, 0, 1, -1};
  size_t index = 99, drawn[8], redrawn[8];
  struct {
    CsraTrainConfig config;
    unsigned char future_fields[64];
  } bigger;

  snprintf(ckpt, sizeof ckpt, "%s/train.ckpt", dir);
  snprintf(missing, sizeof missing, "%s/missing.ckpt", dir);
  snprintf(garbage, sizeof garbage, "%s/garbage.ckpt", dir);
  snprintf(bad_dir, sizeof bad_dir, "%s/no/such/dir/train.ckpt", dir);
  EXPECT(write_all(garbage, junk, sizeof junk - 1), "cannot write %s", garbage);

  /* csra_train_config_default */
  EXPECT_STATUS(csra_train_config_default(NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT_STATUS(csra_train_config_default(&tc), CSRA_OK, NULL);
  EXPECT(tc.struct_size == sizeof tc && tc.method == CSRA_METHOD_CSRA,
         "default train config: size %zu method %u", tc.struct_size, (unsigned)tc.method);

  /* csra_trainer_create */
  EXPECT_STATUS(csra_model_config_default(NULL, &mc), CSRA_OK, NULL);
  mc.seed = 3;
  EXPECT_STATUS(csra_model_create(&mc, &model), CSRA_OK, NULL);
  if (!model) return;
  tc.method = CSRA_METHOD_SUPERVISED;
  tc.crop_size = 64;
  tc.total_steps = 10;
  EXPECT_STATUS(csra_trainer_create(NULL, &tc, &trainer), CSRA_NULL_ARGUMENT, "`model`");
  EXPECT_STATUS(csra_trainer_create(model, NULL, &trainer), CSRA_NULL_ARGUMENT, "`config`");
  EXPECT_STATUS(csra_trainer_create(model, &tc, NULL), CSRA_NULL_ARGUMENT, "`out`");
  memset(&bigger, 0, sizeof bigger);
  bigger.config = tc;
  bigger.config.struct_size = sizeof tc + 8;
  EXPECT_STATUS(csra_trainer_create(model, &bigger.config, &trainer), CSRA_INVALID_ARGUMENT,
                "struct_size");
  short_tc = tc;
  short_tc.struct_size = 1;
  EXPECT_STATUS(csra_trainer_create(model, &short_tc, &trainer), CSRA_INVALID_ARGUMENT,
                "struct_size");
  short_tc = tc;
  short_tc.method = 9;
  EXPECT_STATUS(csra_trainer_create(model, &short_tc, &trainer), CSRA_INVALID_ARGUMENT, "method");
  short_tc = tc;
  short_tc.tau = 2.0f;
  EXPECT_STATUS(csra_trainer_create(model, &short_tc, &trainer), CSRA_INVALID_ARGUMENT, "tau");
  EXPECT(trainer == SENTINEL, "a failed call wrote its output");
  trainer = NULL;
  EXPECT_STATUS(csra_trainer_create(model, &tc, &trainer), CSRA_OK, NULL);
  csra_model_free(model); /* the trainer keeps it alive */
  model = NULL;
  if (!trainer) return;

  /* csra_trainer_step: two 64x64 windows with a synthetic class map (255 = ignore). */
  for (int i = 0; i < 2; ++i) {
    images[i] = make_image(rgb + (size_t)(32 * i) * stride + (size_t)(32 * i) * 3, 64, 64, stride,
                           CSRA_PIXEL_RGB8);
    labels[i] = malloc(64 * 64);
    if (!labels[i]) goto done;
    for (unsigned k = 0; k < 64 * 64; ++k) {
      labels[i][k] = (unsigned char)(k % 97 == 0 ? 255 : ((k / 64) / 16 + (k % 64) / 16 + i) % 5);
    }
    label_ptrs[i] = labels[i];
  }
  batch.images = images;
  batch.labels = label_ptrs;
  batch.count = 2;
  memset(&report, 0, sizeof report);
  EXPECT_STATUS(csra_trainer_step(NULL, &batch, NULL, &report), CSRA_NULL_ARGUMENT, "`trainer`");
  EXPECT_STATUS(csra_trainer_step(trainer, NULL, NULL, &report), CSRA_NULL_ARGUMENT,
                "`labelled`");
  EXPECT_STATUS(csra_trainer_step(trainer, &batch, NULL, NULL), CSRA_NULL_ARGUMENT, "`report`");
  bad = batch;
  bad.images = NULL;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_NULL_ARGUMENT,
                "`labelled->images`");
  bad = batch;
  bad.labels = NULL;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_NULL_ARGUMENT,
                "`labelled->labels`");
  bad = batch;
  bad_label_ptrs[0] = label_ptrs[0];
  bad_label_ptrs[1] = NULL;
  bad.labels = bad_label_ptrs;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_NULL_ARGUMENT,
                "`labelled->labels[1]`");
  bad = batch;
  bad.images = bad_images;
  bad_images[0] = images[0];
  bad_images[1] = images[1];
  bad_images[0].data = NULL;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_NULL_ARGUMENT,
                "`labelled->images[0].data`");
  bad_images[0] = images[0];
  bad_images[1].format = 7;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_INVALID_ARGUMENT,
                "format");
  bad_images[1] = images[1];
  bad_images[1].width = 0;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_INVALID_ARGUMENT,
                "images[1]");
  bad_images[1] = images[1];
  bad_images[1].stride = 10;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_INVALID_ARGUMENT,
                "stride");
  {
    /* A semi-supervised method needs the unlabelled batch (NULL is only for supervised). */
    CsraTrainer *semi = NULL;
    CsraTrainConfig semi_tc = tc;
    CsraModel *semi_model = NULL;
    semi_tc.method = CSRA_METHOD_CSRA;
    EXPECT_STATUS(csra_model_create(&mc, &semi_model), CSRA_OK, NULL);
    EXPECT_STATUS(csra_trainer_create(semi_model, &semi_tc, &semi), CSRA_OK, NULL);
    csra_model_free(semi_model);
    if (semi) {
      bad = batch;
      bad.labels = NULL;
      EXPECT_STATUS(csra_trainer_step(semi, &batch, NULL, &report), CSRA_INVALID_ARGUMENT,
                    "unlabelled");
      bad.images = NULL;
      EXPECT_STATUS(csra_trainer_step(semi, &batch, &bad, &report), CSRA_NULL_ARGUMENT,
                    "`unlabelled->images`");
    }
    csra_trainer_free(semi);
  }
  bad = batch;
  bad.count = 5000;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_INVALID_ARGUMENT, "count");
  EXPECT(report.step == 0, "a failed call wrote its output");
  EXPECT_STATUS(csra_trainer_step(trainer, &batch, NULL, &report), CSRA_OK, NULL);
  EXPECT(isfinite(report.loss) && report.loss > 0 && report.lr > 0,
         "step report: step %llu loss %g lr %g", (unsigned long long)report.step,
         (double)report.loss, (double)report.lr);
  {
    uint64_t first = report.step;
    EXPECT_STATUS(csra_trainer_step(trainer, &batch, NULL, &report), CSRA_OK, NULL);
    EXPECT(report.step == first + 1, "steps %llu then %llu", (unsigned long long)first,
           (unsigned long long)report.step);
  }

  /* csra_sampler_* */
  EXPECT_STATUS(csra_sampler_create(tissues, NULL, 4, 4, 1.0f, 5, 20, 1, &sampler),
                CSRA_NULL_ARGUMENT, "`presence`");
  EXPECT_STATUS(csra_sampler_create(tissues, presence, 4, 4, 1.0f, 5, 20, 1, NULL),
                CSRA_NULL_ARGUMENT, "`out`");
  EXPECT_STATUS(csra_sampler_create(tissues, presence, 0, 4, 1.0f, 5, 20, 1, &sampler),
                CSRA_INVALID_ARGUMENT, "n (0)");
  EXPECT(sampler == SENTINEL, "a failed call wrote its output");
  sampler = NULL;
  EXPECT_STATUS(csra_sampler_create(NULL, presence, 4, 4, 1.0f, 5, 20, 1, &sampler), CSRA_OK,
                NULL);
  csra_sampler_free(sampler);
  sampler = NULL;
  EXPECT_STATUS(csra_sampler_create(tissues, presence, 4, 4, 1.0f, 5, 20, 1, &sampler), CSRA_OK,
                NULL);
  if (!sampler) goto done;
  EXPECT_STATUS(csra_sampler_set_epoch(NULL, 1), CSRA_NULL_ARGUMENT, "`sampler`");
  EXPECT_STATUS(csra_sampler_set_epoch(sampler, 1), CSRA_OK, NULL);
  EXPECT_STATUS(csra_sampler_next(NULL, &index), CSRA_NULL_ARGUMENT, "`sampler`");
  EXPECT_STATUS(csra_sampler_next(sampler, NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT(index == 99, "a failed call wrote its output");
  EXPECT_STATUS(csra_sampler_next(sampler, &index), CSRA_OK, NULL);
  EXPECT(index < 4, "sampled index %zu of 4 tiles", index);

  /* Checkpoints: the sampler draws the same sequence after a restore. */
  EXPECT_STATUS(csra_trainer_save_checkpoint(NULL, sampler, ckpt), CSRA_NULL_ARGUMENT,
                "`trainer`");
  EXPECT_STATUS(csra_trainer_save_checkpoint(trainer, sampler, NULL), CSRA_NULL_ARGUMENT,
                "`path`");
  EXPECT_STATUS(csra_trainer_save_checkpoint(trainer, sampler, bad_dir), CSRA_IO_ERROR, NULL);
  EXPECT_STATUS(csra_trainer_save_checkpoint(trainer, sampler, ckpt), CSRA_OK, NULL);
  for (int i = 0; i < 8; ++i) {
    EXPECT_STATUS(csra_sampler_next(sampler, &drawn[i]), CSRA_OK, NULL);
  }
  EXPECT_STATUS(csra_trainer_load_checkpoint(NULL, sampler, ckpt), CSRA_NULL_ARGUMENT,
                "`trainer`");
  EXPECT_STATUS(csra_trainer_load_checkpoint(trainer, sampler, NULL), CSRA_NULL_ARGUMENT,
                "`path`");
  EXPECT_STATUS(csra_trainer_load_checkpoint(trainer, sampler, missing), CSRA_IO_ERROR,
                "missing.ckpt");
  EXPECT_STATUS(csra_trainer_load_checkpoint(trainer, sampler, garbage), CSRA_BAD_WEIGHTS, NULL);
  EXPECT_STATUS(csra_trainer_load_checkpoint(trainer, sampler, ckpt), CSRA_OK, NULL);
  for (int i = 0; i < 8; ++i) {
    EXPECT_STATUS(csra_sampler_next(sampler, &redrawn[i]), CSRA_OK, NULL);
  }
  EXPECT(memcmp(drawn, redrawn, sizeof drawn) == 0,
         "the sampler draws differently after restoring its checkpoint");
  EXPECT_STATUS(csra_trainer_load_checkpoint(trainer, NULL, ckpt), CSRA_OK, NULL);
  /* Without a sampler: weights and optimizer only. */
  EXPECT_STATUS(csra_trainer_save_checkpoint(trainer, NULL, ckpt), CSRA_OK, NULL);
  EXPECT_STATUS(csra_trainer_load_checkpoint(trainer, sampler, ckpt), CSRA_OK, NULL);

  /* Last, as a library without the check aborts here (a slice over `len` bytes past
   * isize::MAX is undefined behaviour, caught by Rust's debug precondition checks). */
  printf("abi_test: %d checks so far, %d failed; next: an image len of SIZE_MAX in training\n",
         checks, failures);
  fflush(NULL);
  bad = batch;
  bad.images = bad_images;
  bad_images[0] = images[0];
  bad_images[1] = images[1];
  bad_images[1].len = SIZE_MAX;
  EXPECT_STATUS(csra_trainer_step(trainer, &bad, NULL, &report), CSRA_INVALID_ARGUMENT, "len");

done:
  csra_trainer_free(trainer);
  csra_trainer_free(NULL);
  csra_sampler_free(sampler);
  csra_sampler_free(NULL);
  free(labels[0]);
  free(labels[1]);
}

/* Class names and colours: those stored with the weights (the defaults for the class count
 * when none are), arguments checked, names following the weights loaded, a bad name refused
 * whole with the names handed out before still valid. */
static void check_classes(const char *weights) {
  static const char *const consep[5] = {"background", "other", "inflammatory", "epithelial",
                                        "spindle-shaped"};
  /* "other" has QuPath's colour of its built-in class "Other". */
  static const uint8_t colours[5][3] = {
      {0, 0, 0}, {255, 200, 0}, {0, 210, 0}, {255, 140, 0}, {0, 200, 255}};
  CsraModel *model = NULL, *m = SENTINEL;
  const char *name = NULL, *kept = NULL;
  uint8_t rgb[3];
  size_t n = 0, len = 0;
  unsigned char *bytes, *p = NULL;

  EXPECT_STATUS(csra_model_create_from_safetensors(weights, &model), CSRA_OK, NULL);
  if (!model) return;
  EXPECT_STATUS(csra_model_num_classes(NULL, &n), CSRA_NULL_ARGUMENT, "`model`");
  EXPECT_STATUS(csra_model_num_classes(model, NULL), CSRA_NULL_ARGUMENT, "`out`");
  EXPECT_STATUS(csra_model_num_classes(model, &n), CSRA_OK, NULL);
  EXPECT(n == 5, "%zu classes", n);
  for (size_t k = 0; k < 5; ++k) {
    name = NULL;
    EXPECT_STATUS(csra_model_class_name(model, k, &name), CSRA_OK, NULL);
    EXPECT(name && strcmp(name, consep[k]) == 0, "class %zu is \"%s\"", k,
           name ? name : "(null)");
    EXPECT_STATUS(csra_model_class_colour(model, k, rgb), CSRA_OK, NULL);
    EXPECT(memcmp(rgb, colours[k], 3) == 0, "class %zu has colour %u,%u,%u", k,
           (unsigned)rgb[0], (unsigned)rgb[1], (unsigned)rgb[2]);
  }
  name = SENTINEL;
  memset(rgb, 7, sizeof rgb);
  EXPECT_STATUS(csra_model_class_name(NULL, 0, &name), CSRA_NULL_ARGUMENT, "`model`");
  EXPECT_STATUS(csra_model_class_name(model, 0, NULL), CSRA_NULL_ARGUMENT, "`name_out`");
  EXPECT_STATUS(csra_model_class_name(model, 5, &name), CSRA_INVALID_ARGUMENT,
                "class_index 5");
  EXPECT_STATUS(csra_model_class_name(model, SIZE_MAX, &name), CSRA_INVALID_ARGUMENT,
                "5 classes");
  EXPECT(name == SENTINEL, "a failed call wrote its output");
  EXPECT_STATUS(csra_model_class_colour(NULL, 0, rgb), CSRA_NULL_ARGUMENT, "`model`");
  EXPECT_STATUS(csra_model_class_colour(model, 0, NULL), CSRA_NULL_ARGUMENT, "`rgb_out`");
  EXPECT_STATUS(csra_model_class_colour(model, 5, rgb), CSRA_INVALID_ARGUMENT, "5 classes");
  EXPECT(rgb[0] == 7 && rgb[1] == 7 && rgb[2] == 7, "a failed call wrote its output");

  /* The names travel with the weights: "inflammatory" renamed in the file's metadata to
   * "immune cells" (same length) is what the model reports after loading it. */
  bytes = read_all(weights, &len);
  EXPECT(bytes != NULL, "cannot read %s", weights);
  if (bytes) p = find(bytes, len, "inflammatory");
  EXPECT(p != NULL, "the weights carry no class names");
  if (p) {
    memcpy(p, "immune cells", 12);
    EXPECT_STATUS(csra_model_load_safetensors_buffer(model, bytes, len), CSRA_OK, NULL);
    EXPECT_STATUS(csra_model_class_name(model, 2, &kept), CSRA_OK, NULL);
    EXPECT(kept && strcmp(kept, "immune cells") == 0, "class 2 is \"%s\" after loading",
           kept ? kept : "(null)");
    EXPECT_STATUS(csra_model_class_colour(model, 2, rgb), CSRA_OK, NULL);
    EXPECT(memcmp(rgb, colours[2], 3) == 0, "the stored colour is kept");
    /* A name with a NUL character (\u0000, escaped twice in the header): refused whole by
     * load and create; the name handed out above is still valid. */
    memcpy(p, "\\\\u0000 cell", 12);
    EXPECT_STATUS(csra_model_load_safetensors_buffer(model, bytes, len), CSRA_BAD_WEIGHTS,
                  "NUL");
    EXPECT_STATUS(csra_model_create_from_safetensors_buffer(bytes, len, &m), CSRA_BAD_WEIGHTS,
                  "csranet.classes");
    EXPECT(m == SENTINEL, "a failed call wrote its output");
    EXPECT(kept && strcmp(kept, "immune cells") == 0, "a failed load changed the names");
    name = NULL;
    EXPECT_STATUS(csra_model_class_name(model, 2, &name), CSRA_OK, NULL);
    EXPECT(name == kept, "a failed load replaced the names");
  }
  free(bytes);
  csra_model_free(model);

  /* Without stored names, the defaults for the class count: PanNuke's for 6 classes. */
  {
    CsraModelConfig c;
    CsraModel *six = NULL;
    EXPECT_STATUS(csra_model_config_default(NULL, &c), CSRA_OK, NULL);
    c.num_classes = 6;
    EXPECT_STATUS(csra_model_create(&c, &six), CSRA_OK, NULL);
    if (six) {
      EXPECT_STATUS(csra_model_num_classes(six, &n), CSRA_OK, NULL);
      EXPECT(n == 6, "%zu classes", n);
      name = NULL;
      EXPECT_STATUS(csra_model_class_name(six, 1, &name), CSRA_OK, NULL);
      EXPECT(name && strcmp(name, "neoplastic") == 0, "class 1 of 6 is \"%s\"",
             name ? name : "(null)");
      EXPECT_STATUS(csra_model_class_name(six, 6, &name), CSRA_INVALID_ARGUMENT, "6 classes");
    }
    csra_model_free(six);
  }
}

int main(int argc, char **argv) {
  unsigned w = 0, h = 0;
  unsigned char *rgb;
  CsraModel *model = NULL;

  if (argc != 4) {
    fprintf(stderr, "usage: %s <weights.safetensors> <image.ppm> <scratch dir>\n", argv[0]);
    return 2;
  }
  rgb = read_ppm(argv[2], &w, &h);
  if (!rgb || w < 96 || h < 96) {
    fprintf(stderr, "%s: need an 8-bit binary PPM of at least 96x96\n", argv[2]);
    free(rgb);
    return 2;
  }
  {
    const CsraImage full = make_image(rgb, w, h, (size_t)w * 3, CSRA_PIXEL_RGB8);
    const CsraImage small = make_image(rgb, 64, 64, (size_t)w * 3, CSRA_PIXEL_RGB8);

    check_version();
    check_config();
    check_create();
    check_thread_local_errors();
    check_files(argv[1], argv[3], &small);
    check_default_model(&small);
    check_classes(argv[1]);

    EXPECT_STATUS(csra_model_create_from_safetensors(argv[1], &model), CSRA_OK, NULL);
    if (model) {
      check_images(model, rgb, w, h);
      check_segment_image(model, rgb, w);
      check_result(model, &full);
    }
    check_training(argv[3], rgb, w);
  }
  csra_model_free(model);
  free(rgb);

  printf("abi_test: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
