/* Segments a binary PPM (P6) image with csranet's C API.
 *
 *   segment <weights.safetensors | -> <image.ppm>
 *
 * With `-` it builds a randomly initialised `lite` model (seed 42); otherwise it loads a
 * safetensors file written by csranet. It segments the image once as a single tile and
 * once by overlapping 128-pixel tiles with a progress callback, and prints:
 *
 *   csranet <version>
 *   image: <width>x<height>
 *   instances: <n>
 *   class <k> (<name>, #rrggbb): <instances> instances, <pixels> pixels
 *                                      (one line per class >= 1; name and colour: the model's)
 *   progress: <done>/<total>                                (one line per batch)
 *   tiled instances: <n>
 *
 * Every status is checked; on failure it prints the library's message and exits 1.
 * Build: cc -std=c11 -Iinclude examples/c/segment.c -Ltarget/release -lcsranet
 */

#include <csranet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Jumps to `fail` with a message when a csranet call does not return CSRA_OK. */
#define CHECK(call)                                                                  \
  do {                                                                               \
    CsraStatus status_ = (call);                                                     \
    if (status_ != CSRA_OK) {                                                        \
      fprintf(stderr, "error: %s failed with status %d: %s\n", #call, (int)status_, \
              csra_last_error_message());                                            \
      goto fail;                                                                     \
    }                                                                                \
  } while (0)

/* Skips whitespace and `#` comments in a PPM header. */
static int skip_space(FILE *f) {
  int c = fgetc(f);
  for (;;) {
    if (c == '#') {
      while (c != '\n' && c != EOF) c = fgetc(f);
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      c = fgetc(f);
    } else {
      return c;
    }
  }
}

/* Reads a non-negative decimal header field; -1 on error. */
static long read_field(FILE *f) {
  int c = skip_space(f);
  long v = 0;
  if (c < '0' || c > '9') return -1;
  while (c >= '0' && c <= '9') {
    v = v * 10 + (c - '0');
    if (v > 1000000) return -1;
    c = fgetc(f);
  }
  /* Exactly one whitespace byte ends a field (before the raster, it matters). */
  if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return -1;
  return v;
}

/* Reads a binary 8-bit PPM into a malloc'ed RGB buffer; NULL on error. */
static unsigned char *read_ppm(const char *path, unsigned *width, unsigned *height) {
  FILE *f = fopen(path, "rb");
  unsigned char *data = NULL;
  long w, h, maxval;
  if (!f) {
    perror(path);
    return NULL;
  }
  if (fgetc(f) != 'P' || fgetc(f) != '6') {
    fprintf(stderr, "%s: not a binary PPM (P6)\n", path);
    goto done;
  }
  w = read_field(f);
  h = read_field(f);
  maxval = read_field(f);
  if (w <= 0 || h <= 0 || maxval != 255) {
    fprintf(stderr, "%s: unsupported PPM header (need 8-bit P6)\n", path);
    goto done;
  }
  data = malloc((size_t)w * (size_t)h * 3);
  if (!data) {
    fprintf(stderr, "out of memory\n");
    goto done;
  }
  if (fread(data, 3, (size_t)w * (size_t)h, f) != (size_t)w * (size_t)h) {
    fprintf(stderr, "%s: truncated raster\n", path);
    free(data);
    data = NULL;
    goto done;
  }
  *width = (unsigned)w;
  *height = (unsigned)h;
done:
  fclose(f);
  return data;
}

/* Progress callback of csra_segment_image: prints and continues. */
static int32_t on_progress(void *user_data, uint32_t done, uint32_t total) {
  unsigned *calls = user_data;
  ++*calls;
  printf("progress: %u/%u\n", (unsigned)done, (unsigned)total);
  return 0; /* non-zero would cancel */
}

int main(int argc, char **argv) {
  CsraModel *model = NULL;
  CsraSegmentation *seg = NULL;
  CsraSegmentation *tiled = NULL;
  unsigned char *pixels = NULL;
  size_t *per_class = NULL;
  size_t *pixels_per_class = NULL;
  unsigned width = 0, height = 0, progress_calls = 0;
  CsraImage image;
  CsraSegmentOptions options;
  uint32_t seg_w, seg_h, num_classes;
  size_t num_instances, map_len, tiled_instances;
  const uint8_t *class_map;
  int rc = 1;

  if (argc != 3) {
    fprintf(stderr, "usage: %s <weights.safetensors | -> <image.ppm>\n", argv[0]);
    return 2;
  }
  if (csra_version() != (CSRA_VERSION_MAJOR << 16 | CSRA_VERSION_MINOR << 8 | CSRA_VERSION_PATCH)) {
    fprintf(stderr, "error: header %s does not match library %s\n", CSRA_VERSION_STRING,
            csra_version_string());
    return 1;
  }
  printf("csranet %s\n", csra_version_string());

  if (strcmp(argv[1], "-") == 0) {
    CsraModelConfig config;
    CHECK(csra_model_config_default("lite", &config));
    config.seed = 42;
    CHECK(csra_model_create(&config, &model));
  } else {
    CHECK(csra_model_create_from_safetensors(argv[1], &model));
  }

  pixels = read_ppm(argv[2], &width, &height);
  if (!pixels) goto fail;
  printf("image: %ux%u\n", width, height);

  image.data = pixels;
  image.len = (size_t)width * height * 3;
  image.width = width;
  image.height = height;
  image.stride = (size_t)width * 3; /* rows may also be padded: stride >= width * 3 */
  image.format = CSRA_PIXEL_RGB8;

  /* One pass over the whole image, default options. */
  CHECK(csra_segment_tile(model, &image, NULL, &seg));

  CHECK(csra_segmentation_size(seg, &seg_w, &seg_h, &num_classes));
  CHECK(csra_segmentation_num_instances(seg, &num_instances));
  CHECK(csra_segmentation_class_map(seg, &class_map, &map_len));
  if (seg_w != width || seg_h != height || map_len != (size_t)width * height) {
    fprintf(stderr, "error: result is %ux%u (%zu pixels), expected %ux%u\n", (unsigned)seg_w,
            (unsigned)seg_h, map_len, width, height);
    goto fail;
  }

  per_class = calloc(num_classes, sizeof *per_class);
  pixels_per_class = calloc(num_classes, sizeof *pixels_per_class);
  if (!per_class || !pixels_per_class) {
    fprintf(stderr, "out of memory\n");
    goto fail;
  }
  for (size_t i = 0; i < map_len; ++i) {
    if (class_map[i] < num_classes) ++pixels_per_class[class_map[i]];
  }
  for (size_t i = 0; i < num_instances; ++i) {
    CsraInstance inst;
    CHECK(csra_segmentation_instance(seg, i, &inst));
    if (inst.class_id < num_classes) ++per_class[inst.class_id];
  }
  printf("instances: %zu\n", num_instances);
  for (uint32_t k = 1; k < num_classes; ++k) {
    const char *name = NULL; /* owned by the model */
    uint8_t rgb[3];
    CHECK(csra_model_class_name(model, k, &name));
    CHECK(csra_model_class_colour(model, k, rgb));
    printf("class %u (%s, #%02x%02x%02x): %zu instances, %zu pixels\n", (unsigned)k, name,
           (unsigned)rgb[0], (unsigned)rgb[1], (unsigned)rgb[2], per_class[k],
           pixels_per_class[k]);
  }

  /* The same image by overlapping tiles, with progress. */
  CHECK(csra_segment_options_default(&options));
  options.tile_size = 128;
  options.overlap = 32;
  options.keep_probabilities = 0;
  CHECK(csra_segment_image(model, &image, &options, on_progress, &progress_calls, &tiled));
  CHECK(csra_segmentation_num_instances(tiled, &tiled_instances));
  if (progress_calls == 0) {
    fprintf(stderr, "error: the progress callback was never called\n");
    goto fail;
  }
  printf("tiled instances: %zu\n", tiled_instances);
  rc = 0;

fail:
  free(pixels_per_class);
  free(per_class);
  csra_segmentation_free(tiled);
  csra_segmentation_free(seg);
  csra_model_free(model);
  free(pixels);
  return rc;
}
