/* reference.c: the C API's result for a tile, for the Java tests to compare against.
 *
 * Usage: reference WEIGHTS|default IMAGE.ppm
 * Segments the binary PPM (P6, 8-bit) with csra_segment_tile (default options) and with
 * csra_segment_image (tile_size 128, overlap 32, batch_size 2), and prints every instance with
 * floats in C99 hex notation ("%a"), which Java parses exactly:
 *
 *   pass tile
 *   instances N
 *   inst ID CLASS AREA SCORE CX CY X0 Y0 X1 Y1 NPOINTS X Y X Y ...
 *   pass image 128 32
 *   ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csranet.h"

static void die(const char *what, CsraStatus s) {
  fprintf(stderr, "%s: status %d: %s\n", what, (int)s, csra_last_error_message());
  exit(1);
}

static unsigned char *read_ppm(const char *path, unsigned *w, unsigned *h) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  unsigned maxval = 0;
  if (fscanf(f, "P6 %u %u %u", w, h, &maxval) != 3 || maxval != 255 || fgetc(f) == EOF) {
    fprintf(stderr, "%s: not an 8-bit binary PPM\n", path);
    exit(1);
  }
  size_t n = (size_t)*w * *h * 3;
  unsigned char *px = malloc(n);
  if (!px || fread(px, 1, n, f) != n) {
    fprintf(stderr, "%s: short read\n", path);
    exit(1);
  }
  fclose(f);
  return px;
}

static void print_result(const CsraSegmentation *seg) {
  size_t n = 0;
  CsraStatus s = csra_segmentation_num_instances(seg, &n);
  if (s != CSRA_OK) die("num_instances", s);
  printf("instances %zu\n", n);
  for (size_t k = 0; k < n; k++) {
    CsraInstance in;
    s = csra_segmentation_instance(seg, k, &in);
    if (s != CSRA_OK) die("instance", s);
    printf("inst %u %u %u %a %a %a %u %u %u %u %zu", in.id, in.class_id, in.area, (double)in.score,
           (double)in.centroid_x, (double)in.centroid_y, in.bbox_x0, in.bbox_y0, in.bbox_x1,
           in.bbox_y1, in.polygon_len);
    for (size_t p = 0; p < 2 * in.polygon_len; p++) printf(" %a", (double)in.polygon[p]);
    printf("\n");
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s WEIGHTS|default IMAGE.ppm\n", argv[0]);
    return 2;
  }
  CsraModel *model = NULL;
  CsraStatus s = strcmp(argv[1], "default") == 0
                     ? csra_model_create_default(&model)
                     : csra_model_create_from_safetensors(argv[1], &model);
  if (s != CSRA_OK) die("model", s);
  unsigned w = 0, h = 0;
  unsigned char *px = read_ppm(argv[2], &w, &h);
  CsraImage img = {px, (size_t)w * h * 3, w, h, (size_t)w * 3, CSRA_PIXEL_RGB8};

  CsraSegmentation *seg = NULL;
  s = csra_segment_tile(model, &img, NULL, &seg);
  if (s != CSRA_OK) die("segment_tile", s);
  printf("pass tile\n");
  print_result(seg);
  csra_segmentation_free(seg);

  CsraSegmentOptions o;
  s = csra_segment_options_default(&o);
  if (s != CSRA_OK) die("options", s);
  o.tile_size = 128;
  o.overlap = 32;
  o.batch_size = 2;
  seg = NULL;
  s = csra_segment_image(model, &img, &o, NULL, NULL, &seg);
  if (s != CSRA_OK) die("segment_image", s);
  printf("pass image 128 32\n");
  print_result(seg);
  csra_segmentation_free(seg);

  csra_model_free(model);
  free(px);
  return 0;
}
