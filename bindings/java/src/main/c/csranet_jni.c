/* csranet_jni.c: JNI glue between io.csranet.Native and the csranet C API (include/csranet.h).
 *
 * A thin client of the public C header, like every other host: it copies Java arrays into
 * native buffers, calls csra_*, and turns each non-OK status into a Java exception carrying the
 * library's message (io.csranet.CsraException.fromNative). It keeps no state besides cached
 * class and method references, and never holds a JNI critical section across a native call.
 *
 * Rules followed throughout:
 * - every jarray/jobject argument may be null and every size may be negative: checked here
 *   again (the Java side checks first), so no Java input can crash the process;
 * - after any JNI call that can throw (allocation, callbacks) an exception check, and then
 *   only cleanup before returning;
 * - native results are copied into Java arrays and freed before returning.
 */

#include <jni.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csranet.h"
#include "io_csranet_Native.h"

static JavaVM *g_vm;
static jclass g_exception_class;  /* io.csranet.CsraException */
static jmethodID g_from_native;   /* static Throwable fromNative(int, byte[]) */
static jclass g_object_class;     /* java.lang.Object */
static jmethodID g_on_progress;   /* boolean Native$ProgressBridge.onProgress(int, int) */

static jclass global_class(JNIEnv *env, const char *name) {
  jclass local = (*env)->FindClass(env, name);
  if (local == NULL) return NULL;
  jclass global = (jclass)(*env)->NewGlobalRef(env, local);
  (*env)->DeleteLocalRef(env, local);
  return global;
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
  (void)reserved;
  JNIEnv *env = NULL;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) return JNI_ERR;
  g_vm = vm;
  g_exception_class = global_class(env, "io/csranet/CsraException");
  if (g_exception_class == NULL) return JNI_ERR;
  g_from_native = (*env)->GetStaticMethodID(env, g_exception_class, "fromNative",
                                            "(I[B)Ljava/lang/Throwable;");
  if (g_from_native == NULL) return JNI_ERR;
  g_object_class = global_class(env, "java/lang/Object");
  if (g_object_class == NULL) return JNI_ERR;
  jclass bridge = (*env)->FindClass(env, "io/csranet/Native$ProgressBridge");
  if (bridge == NULL) return JNI_ERR;
  g_on_progress = (*env)->GetMethodID(env, bridge, "onProgress", "(II)Z");
  (*env)->DeleteLocalRef(env, bridge);
  if (g_on_progress == NULL) return JNI_ERR;
  return JNI_VERSION_1_8;
}

JNIEXPORT void JNICALL JNI_OnUnload(JavaVM *vm, void *reserved) {
  (void)reserved;
  JNIEnv *env = NULL;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) return;
  if (g_exception_class) (*env)->DeleteGlobalRef(env, g_exception_class);
  if (g_object_class) (*env)->DeleteGlobalRef(env, g_object_class);
  g_exception_class = NULL;
  g_object_class = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Exceptions */

static void throw_java(JNIEnv *env, const char *cls, const char *msg) {
  if ((*env)->ExceptionCheck(env)) return;
  jclass c = (*env)->FindClass(env, cls);
  if (c != NULL) (*env)->ThrowNew(env, c, msg);
}

static jbyteArray bytes_of(JNIEnv *env, const char *s) {
  size_t n = strlen(s);
  if (n > (size_t)INT32_MAX) n = (size_t)INT32_MAX;
  jbyteArray a = (*env)->NewByteArray(env, (jsize)n);
  if (a != NULL) (*env)->SetByteArrayRegion(env, a, 0, (jsize)n, (const jbyte *)s);
  return a;
}

/* Throws the CsraException for `status` with this thread's last error message. The message
 * travels as UTF-8 bytes (NewStringUTF wants modified UTF-8, which Rust strings are not). */
static void throw_status(JNIEnv *env, CsraStatus status) {
  if ((*env)->ExceptionCheck(env)) return;
  const char *msg = csra_last_error_message();
  jbyteArray bytes = bytes_of(env, msg ? msg : "");
  if (bytes == NULL) return; /* OutOfMemoryError pending */
  jobject ex = (*env)->CallStaticObjectMethod(env, g_exception_class, g_from_native, (jint)status,
                                              bytes);
  (*env)->DeleteLocalRef(env, bytes);
  if ((*env)->ExceptionCheck(env) || ex == NULL) return;
  (*env)->Throw(env, (jthrowable)ex);
  (*env)->DeleteLocalRef(env, ex);
}

/* Returns 1 (and throws) unless status is CSRA_OK. */
static int failed(JNIEnv *env, CsraStatus status) {
  if (status == CSRA_OK) return 0;
  throw_status(env, status);
  return 1;
}

static int null_arg(JNIEnv *env, const void *p, const char *what) {
  if (p != NULL) return 0;
  char msg[160];
  snprintf(msg, sizeof msg, "%s is null", what);
  throw_java(env, "java/lang/NullPointerException", msg);
  return 1;
}

static int bad_handle(JNIEnv *env, jlong h, const char *what) {
  if (h != 0) return 0;
  char msg[160];
  snprintf(msg, sizeof msg, "%s handle is 0 (closed?)", what);
  throw_java(env, "java/lang/IllegalStateException", msg);
  return 1;
}

static void illegal_argument(JNIEnv *env, const char *msg) {
  throw_java(env, "java/lang/IllegalArgumentException", msg);
}

/* ---------------------------------------------------------------------------------------- */
/* Array helpers */

/* A malloc'd copy of a byte array (NUL-terminated when `nul`); NULL with an exception on
 * failure. `*len` receives the array length. */
static uint8_t *copy_bytes(JNIEnv *env, jbyteArray a, int nul, size_t *len, const char *what) {
  if (null_arg(env, a, what)) return NULL;
  jsize n = (*env)->GetArrayLength(env, a);
  uint8_t *buf = (uint8_t *)malloc((size_t)n + (nul ? 1 : 0) + 1);
  if (buf == NULL) {
    throw_java(env, "java/lang/OutOfMemoryError", "csranet: out of native memory");
    return NULL;
  }
  (*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)buf);
  if (nul) {
    for (jsize i = 0; i < n; i++) {
      if (buf[i] == 0) {
        free(buf);
        char msg[160];
        snprintf(msg, sizeof msg, "%s contains a NUL byte", what);
        illegal_argument(env, msg);
        return NULL;
      }
    }
    buf[n] = 0;
  }
  if (len) *len = (size_t)n;
  return buf;
}

static char *copy_path(JNIEnv *env, jbyteArray a) {
  return (char *)copy_bytes(env, a, 1, NULL, "path");
}

static jlongArray long_array(JNIEnv *env, const jlong *v, jsize n) {
  jlongArray a = (*env)->NewLongArray(env, n);
  if (a != NULL) (*env)->SetLongArrayRegion(env, a, 0, n, v);
  return a;
}

/* ---------------------------------------------------------------------------------------- */
/* Versions */

JNIEXPORT jint JNICALL Java_io_csranet_Native_version(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)csra_version();
}

JNIEXPORT jint JNICALL Java_io_csranet_Native_headerVersion(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)((CSRA_VERSION_MAJOR << 16) | (CSRA_VERSION_MINOR << 8) | CSRA_VERSION_PATCH);
}

JNIEXPORT jbyteArray JNICALL Java_io_csranet_Native_versionString(JNIEnv *env, jclass cls) {
  (void)cls;
  return bytes_of(env, csra_version_string());
}

/* ---------------------------------------------------------------------------------------- */
/* Models */

static jlongArray config_to_java(JNIEnv *env, const CsraModelConfig *c) {
  union {
    float f;
    uint32_t u;
  } w;
  w.f = c->width;
  jlong v[8] = {(jlong)c->depth,     (jlong)c->output_stride, (jlong)c->num_classes,
                (jlong)c->raa,       (jlong)c->raa_region,    (jlong)c->seed,
                (jlong)c->device,    (jlong)w.u};
  return long_array(env, v, 8);
}

JNIEXPORT jlongArray JNICALL Java_io_csranet_Native_configPreset(JNIEnv *env, jclass cls,
                                                                 jbyteArray name) {
  (void)cls;
  char *n = NULL;
  if (name != NULL) {
    n = (char *)copy_bytes(env, name, 1, NULL, "preset name");
    if (n == NULL) return NULL;
  }
  CsraModelConfig c;
  CsraStatus s = csra_model_config_default(n, &c);
  free(n);
  if (failed(env, s)) return NULL;
  return config_to_java(env, &c);
}

JNIEXPORT jlong JNICALL Java_io_csranet_Native_modelCreate(JNIEnv *env, jclass cls,
                                                          jlongArray config) {
  (void)cls;
  if (null_arg(env, config, "config")) return 0;
  if ((*env)->GetArrayLength(env, config) != 8) {
    illegal_argument(env, "config must have 8 values");
    return 0;
  }
  jlong v[8];
  (*env)->GetLongArrayRegion(env, config, 0, 8, v);
  CsraModelConfig c;
  if (failed(env, csra_model_config_default(NULL, &c))) return 0;
  for (int i = 0; i < 7; i++) {
    if (i == 5) continue; /* seed: any 64-bit value */
    if (v[i] < 0 || v[i] > (jlong)UINT32_MAX) {
      illegal_argument(env, "config values must be within 0..2^32-1");
      return 0;
    }
  }
  union {
    float f;
    uint32_t u;
  } w;
  w.u = (uint32_t)v[7];
  c.depth = (uint32_t)v[0];
  c.output_stride = (uint32_t)v[1];
  c.num_classes = (uint32_t)v[2];
  c.raa = (uint32_t)v[3];
  c.raa_region = (uint32_t)v[4];
  c.seed = (uint64_t)v[5];
  c.device = (uint32_t)v[6];
  c.width = w.f;
  CsraModel *m = NULL;
  if (failed(env, csra_model_create(&c, &m))) return 0;
  return (jlong)(intptr_t)m;
}

JNIEXPORT jlong JNICALL Java_io_csranet_Native_modelCreateDefault(JNIEnv *env, jclass cls) {
  (void)cls;
  CsraModel *m = NULL;
  if (failed(env, csra_model_create_default(&m))) return 0;
  return (jlong)(intptr_t)m;
}

JNIEXPORT jlong JNICALL Java_io_csranet_Native_modelFromFile(JNIEnv *env, jclass cls,
                                                            jbyteArray path) {
  (void)cls;
  char *p = copy_path(env, path);
  if (p == NULL) return 0;
  CsraModel *m = NULL;
  CsraStatus s = csra_model_create_from_safetensors(p, &m);
  free(p);
  if (failed(env, s)) return 0;
  return (jlong)(intptr_t)m;
}

JNIEXPORT jlong JNICALL Java_io_csranet_Native_modelFromBytes(JNIEnv *env, jclass cls,
                                                             jbyteArray data) {
  (void)cls;
  size_t len = 0;
  uint8_t *buf = copy_bytes(env, data, 0, &len, "data");
  if (buf == NULL) return 0;
  CsraModel *m = NULL;
  CsraStatus s = csra_model_create_from_safetensors_buffer(buf, len, &m);
  free(buf);
  if (failed(env, s)) return 0;
  return (jlong)(intptr_t)m;
}

JNIEXPORT void JNICALL Java_io_csranet_Native_modelLoadFile(JNIEnv *env, jclass cls, jlong model,
                                                           jbyteArray path) {
  (void)cls;
  if (bad_handle(env, model, "model")) return;
  char *p = copy_path(env, path);
  if (p == NULL) return;
  CsraStatus s = csra_model_load_safetensors((CsraModel *)(intptr_t)model, p);
  free(p);
  failed(env, s);
}

JNIEXPORT void JNICALL Java_io_csranet_Native_modelLoadBytes(JNIEnv *env, jclass cls, jlong model,
                                                            jbyteArray data) {
  (void)cls;
  if (bad_handle(env, model, "model")) return;
  size_t len = 0;
  uint8_t *buf = copy_bytes(env, data, 0, &len, "data");
  if (buf == NULL) return;
  CsraStatus s = csra_model_load_safetensors_buffer((CsraModel *)(intptr_t)model, buf, len);
  free(buf);
  failed(env, s);
}

JNIEXPORT void JNICALL Java_io_csranet_Native_modelSave(JNIEnv *env, jclass cls, jlong model,
                                                       jbyteArray path) {
  (void)cls;
  if (bad_handle(env, model, "model")) return;
  char *p = copy_path(env, path);
  if (p == NULL) return;
  CsraStatus s = csra_model_save_safetensors((const CsraModel *)(intptr_t)model, p);
  free(p);
  failed(env, s);
}

JNIEXPORT jlongArray JNICALL Java_io_csranet_Native_modelConfig(JNIEnv *env, jclass cls,
                                                                jlong model) {
  (void)cls;
  if (bad_handle(env, model, "model")) return NULL;
  CsraModelConfig c;
  if (failed(env, csra_model_get_config((const CsraModel *)(intptr_t)model, &c))) return NULL;
  return config_to_java(env, &c);
}

JNIEXPORT jint JNICALL Java_io_csranet_Native_modelNumClasses(JNIEnv *env, jclass cls,
                                                              jlong model) {
  (void)cls;
  if (bad_handle(env, model, "model")) return 0;
  size_t n = 0;
  if (failed(env, csra_model_num_classes((const CsraModel *)(intptr_t)model, &n))) return 0;
  return n > (size_t)INT32_MAX ? INT32_MAX : (jint)n;
}

/* The name is copied into a Java byte array (UTF-8) while the caller holds the model's read
 * lock, so no weights load can replace it meanwhile. */
JNIEXPORT jbyteArray JNICALL Java_io_csranet_Native_modelClassName(JNIEnv *env, jclass cls,
                                                                   jlong model, jint index) {
  (void)cls;
  if (bad_handle(env, model, "model")) return NULL;
  if (index < 0) {
    illegal_argument(env, "class index is negative");
    return NULL;
  }
  const char *name = NULL;
  if (failed(env, csra_model_class_name((const CsraModel *)(intptr_t)model, (size_t)index, &name)))
    return NULL;
  return bytes_of(env, name);
}

JNIEXPORT jint JNICALL Java_io_csranet_Native_modelClassColour(JNIEnv *env, jclass cls,
                                                               jlong model, jint index) {
  (void)cls;
  if (bad_handle(env, model, "model")) return 0;
  if (index < 0) {
    illegal_argument(env, "class index is negative");
    return 0;
  }
  uint8_t rgb[3];
  if (failed(env, csra_model_class_colour((const CsraModel *)(intptr_t)model, (size_t)index, rgb)))
    return 0;
  return (jint)((uint32_t)rgb[0] << 16 | (uint32_t)rgb[1] << 8 | rgb[2]);
}

JNIEXPORT void JNICALL Java_io_csranet_Native_modelFree(JNIEnv *env, jclass cls, jlong model) {
  (void)env;
  (void)cls;
  csra_model_free((CsraModel *)(intptr_t)model);
}

/* ---------------------------------------------------------------------------------------- */
/* Segmentation */

#define OPT_F 9
#define OPT_I 5

JNIEXPORT jfloatArray JNICALL Java_io_csranet_Native_segmentOptionsDefaults(JNIEnv *env,
                                                                            jclass cls) {
  (void)cls;
  CsraSegmentOptions o;
  if (failed(env, csra_segment_options_default(&o))) return NULL;
  jfloat v[OPT_F + OPT_I] = {o.mean[0], o.mean[1], o.mean[2], o.std[0],   o.std[1],
                             o.std[2],  o.h,       o.sigma,   o.polygon_tolerance,
                             (jfloat)o.min_area,   (jfloat)o.tile_size,  (jfloat)o.overlap,
                             (jfloat)o.batch_size, (jfloat)o.keep_probabilities};
  jfloatArray a = (*env)->NewFloatArray(env, OPT_F + OPT_I);
  if (a != NULL) (*env)->SetFloatArrayRegion(env, a, 0, OPT_F + OPT_I, v);
  return a;
}

/* Fills `o` from the Java option arrays; 0 with an exception on error. */
static int read_options(JNIEnv *env, jfloatArray optF, jintArray optI, CsraSegmentOptions *o) {
  if (null_arg(env, optF, "optF") || null_arg(env, optI, "optI")) return 0;
  if ((*env)->GetArrayLength(env, optF) != OPT_F || (*env)->GetArrayLength(env, optI) != OPT_I) {
    illegal_argument(env, "option arrays have the wrong length");
    return 0;
  }
  jfloat f[OPT_F];
  jint i[OPT_I];
  (*env)->GetFloatArrayRegion(env, optF, 0, OPT_F, f);
  (*env)->GetIntArrayRegion(env, optI, 0, OPT_I, i);
  for (int k = 0; k < OPT_I; k++) {
    if (i[k] < 0) {
      illegal_argument(env, "integer options must not be negative");
      return 0;
    }
  }
  if (failed(env, csra_segment_options_default(o))) return 0;
  for (int c = 0; c < 3; c++) {
    o->mean[c] = f[c];
    o->std[c] = f[3 + c];
  }
  o->h = f[6];
  o->sigma = f[7];
  o->polygon_tolerance = f[8];
  o->min_area = (uint32_t)i[0];
  o->tile_size = (uint32_t)i[1];
  o->overlap = (uint32_t)i[2];
  o->batch_size = (uint32_t)i[3];
  o->keep_probabilities = (uint32_t)i[4];
  return 1;
}

struct progress_ctx {
  jobject bridge; /* Native$ProgressBridge, may be NULL */
};

/* Called by csra_segment_image on the thread that called it (the C API calls the callback
 * from the calling thread). Anything else, defensively: keep going without touching Java. */
static int32_t progress_trampoline(void *user_data, uint32_t done, uint32_t total) {
  struct progress_ctx *ctx = (struct progress_ctx *)user_data;
  if (ctx == NULL || ctx->bridge == NULL || g_vm == NULL) return 0;
  JNIEnv *env = NULL;
  if ((*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK || env == NULL) return 0;
  if ((*env)->ExceptionCheck(env)) return 1;
  jint d = done > (uint32_t)INT32_MAX ? INT32_MAX : (jint)done;
  jint t = total > (uint32_t)INT32_MAX ? INT32_MAX : (jint)total;
  jboolean go = (*env)->CallBooleanMethod(env, ctx->bridge, g_on_progress, d, t);
  if ((*env)->ExceptionCheck(env)) return 1; /* e.g. StackOverflowError: stop, keep it pending */
  return go ? 0 : 1;
}

/* Builds the Object[] result (see Native.segmentBytes) and frees nothing. NULL with an
 * exception pending on failure. */
static jobjectArray result_to_java(JNIEnv *env, const CsraSegmentation *seg, jboolean maps) {
  uint32_t w = 0, h = 0, nc = 0;
  size_t n = 0;
  if (failed(env, csra_segmentation_size(seg, &w, &h, &nc))) return NULL;
  if (failed(env, csra_segmentation_num_instances(seg, &n))) return NULL;
  if (n > (size_t)(INT32_MAX / 9)) {
    throw_java(env, "java/lang/OutOfMemoryError", "csranet: too many instances for Java arrays");
    return NULL;
  }
  /* Count polygon points first. */
  size_t points = 0;
  for (size_t k = 0; k < n; k++) {
    CsraInstance in;
    if (failed(env, csra_segmentation_instance(seg, k, &in))) return NULL;
    points += in.polygon_len;
  }
  if (points > (size_t)(INT32_MAX / 2)) {
    throw_java(env, "java/lang/OutOfMemoryError", "csranet: polygons too large for Java arrays");
    return NULL;
  }
  jint *ints = (jint *)malloc(sizeof(jint) * (9 * n + 1));
  jfloat *floats = (jfloat *)malloc(sizeof(jfloat) * (3 * n + 1));
  jfloat *poly = (jfloat *)malloc(sizeof(jfloat) * (2 * points + 1));
  if (ints == NULL || floats == NULL || poly == NULL) {
    free(ints);
    free(floats);
    free(poly);
    throw_java(env, "java/lang/OutOfMemoryError", "csranet: out of native memory");
    return NULL;
  }
  size_t at = 0;
  for (size_t k = 0; k < n; k++) {
    CsraInstance in;
    if (failed(env, csra_segmentation_instance(seg, k, &in))) {
      free(ints);
      free(floats);
      free(poly);
      return NULL;
    }
    jint *r = ints + 9 * k;
    r[0] = (jint)in.id;
    r[1] = (jint)in.class_id;
    r[2] = (jint)in.area;
    r[3] = (jint)in.bbox_x0;
    r[4] = (jint)in.bbox_y0;
    r[5] = (jint)in.bbox_x1;
    r[6] = (jint)in.bbox_y1;
    r[7] = (jint)at;
    r[8] = (jint)in.polygon_len;
    floats[3 * k] = in.score;
    floats[3 * k + 1] = in.centroid_x;
    floats[3 * k + 2] = in.centroid_y;
    if (in.polygon_len > 0 && in.polygon != NULL) {
      memcpy(poly + 2 * at, in.polygon, sizeof(float) * 2 * in.polygon_len);
    }
    at += in.polygon_len;
  }

  jobjectArray out = (*env)->NewObjectArray(env, 7, g_object_class, NULL);
  jintArray header = (*env)->NewIntArray(env, 4);
  jintArray jints = (*env)->NewIntArray(env, (jsize)(9 * n));
  jfloatArray jfloats = (*env)->NewFloatArray(env, (jsize)(3 * n));
  jfloatArray jpoly = (*env)->NewFloatArray(env, (jsize)(2 * points));
  if (out == NULL || header == NULL || jints == NULL || jfloats == NULL || jpoly == NULL) {
    free(ints);
    free(floats);
    free(poly);
    return NULL;
  }
  jint hv[4] = {(jint)w, (jint)h, (jint)nc, (jint)n};
  (*env)->SetIntArrayRegion(env, header, 0, 4, hv);
  (*env)->SetIntArrayRegion(env, jints, 0, (jsize)(9 * n), ints);
  (*env)->SetFloatArrayRegion(env, jfloats, 0, (jsize)(3 * n), floats);
  (*env)->SetFloatArrayRegion(env, jpoly, 0, (jsize)(2 * points), poly);
  free(ints);
  free(floats);
  free(poly);
  (*env)->SetObjectArrayElement(env, out, 0, header);
  (*env)->SetObjectArrayElement(env, out, 1, jints);
  (*env)->SetObjectArrayElement(env, out, 2, jfloats);
  (*env)->SetObjectArrayElement(env, out, 3, jpoly);

  if (maps) {
    const uint8_t *cm = NULL;
    size_t cm_len = 0;
    const uint32_t *labels = NULL;
    size_t labels_len = 0;
    if (failed(env, csra_segmentation_class_map(seg, &cm, &cm_len))) return NULL;
    if (failed(env, csra_segmentation_labels(seg, &labels, &labels_len))) return NULL;
    if (cm_len > (size_t)INT32_MAX || labels_len > (size_t)INT32_MAX) {
      throw_java(env, "java/lang/OutOfMemoryError", "csranet: maps too large for Java arrays");
      return NULL;
    }
    jbyteArray jcm = (*env)->NewByteArray(env, (jsize)cm_len);
    if (jcm == NULL) return NULL;
    (*env)->SetByteArrayRegion(env, jcm, 0, (jsize)cm_len, (const jbyte *)cm);
    (*env)->SetObjectArrayElement(env, out, 4, jcm);
    /* uint32 ids below 2^31 are the same bits as jint. */
    jintArray jl = (*env)->NewIntArray(env, (jsize)labels_len);
    if (jl == NULL) return NULL;
    (*env)->SetIntArrayRegion(env, jl, 0, (jsize)labels_len, (const jint *)labels);
    (*env)->SetObjectArrayElement(env, out, 5, jl);
    const float *probs = NULL;
    size_t probs_len = 0;
    CsraStatus s = csra_segmentation_probabilities(seg, &probs, &probs_len);
    if (s == CSRA_OK) {
      if (probs_len > (size_t)INT32_MAX) {
        throw_java(env, "java/lang/OutOfMemoryError",
                   "csranet: probabilities too large for Java arrays");
        return NULL;
      }
      jfloatArray jp = (*env)->NewFloatArray(env, (jsize)probs_len);
      if (jp == NULL) return NULL;
      (*env)->SetFloatArrayRegion(env, jp, 0, (jsize)probs_len, probs);
      (*env)->SetObjectArrayElement(env, out, 6, jp);
    } else if (s != CSRA_NOT_AVAILABLE) {
      throw_status(env, s);
      return NULL;
    }
  }
  return out;
}

/* Runs the segmentation of `img` and converts the result. */
static jobjectArray run_segmentation(JNIEnv *env, jlong model, const CsraImage *img,
                                     jfloatArray optF, jintArray optI, jboolean tiled,
                                     jobject progress, jboolean maps) {
  CsraSegmentOptions o;
  if (!read_options(env, optF, optI, &o)) return NULL;
  CsraSegmentation *seg = NULL;
  CsraStatus s;
  if (tiled) {
    struct progress_ctx ctx = {progress};
    s = csra_segment_image((const CsraModel *)(intptr_t)model, img, &o,
                           progress ? progress_trampoline : NULL, &ctx, &seg);
  } else {
    s = csra_segment_tile((const CsraModel *)(intptr_t)model, img, &o, &seg);
  }
  if ((*env)->ExceptionCheck(env)) { /* thrown inside the progress callback */
    csra_segmentation_free(seg);
    return NULL;
  }
  if (failed(env, s)) {
    csra_segmentation_free(seg);
    return NULL;
  }
  jobjectArray out = result_to_java(env, seg, maps);
  csra_segmentation_free(seg);
  return out;
}

static int check_dims(JNIEnv *env, jint width, jint height, jint stride, jint offset) {
  if (width < 0 || height < 0 || stride < 0 || offset < 0) {
    illegal_argument(env, "width, height, stride and offset must not be negative");
    return 0;
  }
  return 1;
}

JNIEXPORT jobjectArray JNICALL Java_io_csranet_Native_segmentBytes(
    JNIEnv *env, jclass cls, jlong model, jbyteArray data, jint offset, jint width, jint height,
    jint stride, jint format, jfloatArray optF, jintArray optI, jboolean tiled, jobject progress,
    jboolean maps) {
  (void)cls;
  if (bad_handle(env, model, "model") || null_arg(env, data, "pixels")) return NULL;
  if (!check_dims(env, width, height, stride, offset)) return NULL;
  jsize n = (*env)->GetArrayLength(env, data);
  if (offset > n) {
    illegal_argument(env, "offset is beyond the end of the pixel array");
    return NULL;
  }
  /* Copy what the image may read: rows of `stride` bytes from `offset`, capped by the array.
   * The C API checks width, height and stride against this length. */
  size_t avail = (size_t)(n - offset);
  size_t need = (size_t)stride * (size_t)height;
  size_t len = need < avail ? need : avail;
  uint8_t *buf = (uint8_t *)malloc(len + 1);
  if (buf == NULL) {
    throw_java(env, "java/lang/OutOfMemoryError", "csranet: out of native memory");
    return NULL;
  }
  (*env)->GetByteArrayRegion(env, data, offset, (jsize)len, (jbyte *)buf);
  CsraImage img = {buf, len, (uint32_t)width, (uint32_t)height, (size_t)stride, (uint32_t)format};
  jobjectArray out = run_segmentation(env, model, &img, optF, optI, tiled, progress, maps);
  free(buf);
  return out;
}

JNIEXPORT jobjectArray JNICALL Java_io_csranet_Native_segmentArgb(
    JNIEnv *env, jclass cls, jlong model, jintArray data, jint offset, jint width, jint height,
    jint stride, jfloatArray optF, jintArray optI, jboolean tiled, jobject progress,
    jboolean maps) {
  (void)cls;
  if (bad_handle(env, model, "model") || null_arg(env, data, "pixels")) return NULL;
  if (!check_dims(env, width, height, stride, offset)) return NULL;
  if (stride < width) {
    illegal_argument(env, "stride must be at least width");
    return NULL;
  }
  jsize n = (*env)->GetArrayLength(env, data);
  if (height > 0 && width > 0 &&
      (int64_t)offset + (int64_t)(height - 1) * stride + width > (int64_t)n) {
    illegal_argument(env, "the ARGB array is too short for width, height, stride and offset");
    return NULL;
  }
  /* Packed ARGB ints -> RGB8, one row at a time. */
  size_t w = (size_t)width, h = (size_t)height;
  uint8_t *rgb = (uint8_t *)malloc(w * h * 3 + 1);
  jint *row = (jint *)malloc(sizeof(jint) * (w + 1));
  if (rgb == NULL || row == NULL) {
    free(rgb);
    free(row);
    throw_java(env, "java/lang/OutOfMemoryError", "csranet: out of native memory");
    return NULL;
  }
  for (size_t y = 0; y < h; y++) {
    (*env)->GetIntArrayRegion(env, data, (jsize)((size_t)offset + y * (size_t)stride), (jsize)w,
                              row);
    uint8_t *o = rgb + y * w * 3;
    for (size_t x = 0; x < w; x++) {
      uint32_t p = (uint32_t)row[x];
      o[3 * x] = (uint8_t)(p >> 16);
      o[3 * x + 1] = (uint8_t)(p >> 8);
      o[3 * x + 2] = (uint8_t)p;
    }
  }
  free(row);
  CsraImage img = {rgb, w * h * 3, (uint32_t)width, (uint32_t)height, w * 3, CSRA_PIXEL_RGB8};
  jobjectArray out = run_segmentation(env, model, &img, optF, optI, tiled, progress, maps);
  free(rgb);
  return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Training */

JNIEXPORT jintArray JNICALL Java_io_csranet_Native_trainConfigDefaultInts(JNIEnv *env,
                                                                          jclass cls) {
  (void)cls;
  CsraTrainConfig c;
  if (failed(env, csra_train_config_default(&c))) return NULL;
  jint v[4] = {(jint)c.method, (jint)c.total_steps, (jint)c.crop_size, (jint)c.contrastive};
  jintArray a = (*env)->NewIntArray(env, 4);
  if (a != NULL) (*env)->SetIntArrayRegion(env, a, 0, 4, v);
  return a;
}

JNIEXPORT jfloatArray JNICALL Java_io_csranet_Native_trainConfigDefaultFloats(JNIEnv *env,
                                                                              jclass cls) {
  (void)cls;
  CsraTrainConfig c;
  if (failed(env, csra_train_config_default(&c))) return NULL;
  jfloat v[8] = {c.lr, c.momentum, c.weight_decay, c.head_lr_mult,
                 c.clip_norm, c.tau, c.lambda_u, c.lambda_c};
  jfloatArray a = (*env)->NewFloatArray(env, 8);
  if (a != NULL) (*env)->SetFloatArrayRegion(env, a, 0, 8, v);
  return a;
}

JNIEXPORT jlong JNICALL Java_io_csranet_Native_trainConfigDefaultSeed(JNIEnv *env, jclass cls) {
  (void)cls;
  CsraTrainConfig c;
  if (failed(env, csra_train_config_default(&c))) return 0;
  return (jlong)c.seed;
}

JNIEXPORT jlong JNICALL Java_io_csranet_Native_trainerCreate(JNIEnv *env, jclass cls, jlong model,
                                                            jintArray ints, jfloatArray floats,
                                                            jlong seed) {
  (void)cls;
  if (bad_handle(env, model, "model") || null_arg(env, ints, "ints") ||
      null_arg(env, floats, "floats"))
    return 0;
  if ((*env)->GetArrayLength(env, ints) != 4 || (*env)->GetArrayLength(env, floats) != 8) {
    illegal_argument(env, "train config arrays have the wrong length");
    return 0;
  }
  jint i[4];
  jfloat f[8];
  (*env)->GetIntArrayRegion(env, ints, 0, 4, i);
  (*env)->GetFloatArrayRegion(env, floats, 0, 8, f);
  for (int k = 0; k < 4; k++) {
    if (i[k] < 0) {
      illegal_argument(env, "integer train settings must not be negative");
      return 0;
    }
  }
  CsraTrainConfig c;
  if (failed(env, csra_train_config_default(&c))) return 0;
  c.method = (uint32_t)i[0];
  c.total_steps = (uint32_t)i[1];
  c.crop_size = (uint32_t)i[2];
  c.contrastive = (uint32_t)i[3];
  c.lr = f[0];
  c.momentum = f[1];
  c.weight_decay = f[2];
  c.head_lr_mult = f[3];
  c.clip_norm = f[4];
  c.tau = f[5];
  c.lambda_u = f[6];
  c.lambda_c = f[7];
  c.seed = (uint64_t)seed;
  CsraTrainer *t = NULL;
  if (failed(env, csra_trainer_create((const CsraModel *)(intptr_t)model, &c, &t))) return 0;
  return (jlong)(intptr_t)t;
}

/* Native copies of a Java batch. */
struct batch {
  size_t count;
  CsraImage *images;
  uint8_t **pixels;
  uint8_t **labels;
  const uint8_t **label_ptrs;
};

static void batch_free(struct batch *b) {
  for (size_t k = 0; k < b->count; k++) {
    if (b->pixels) free(b->pixels[k]);
    if (b->labels) free(b->labels[k]);
  }
  free(b->images);
  free(b->pixels);
  free(b->labels);
  free(b->label_ptrs);
  memset(b, 0, sizeof *b);
}

/* Copies a batch; 0 with an exception on error. `labels` may be NULL (unlabelled batch). */
static int batch_read(JNIEnv *env, jobjectArray images, jintArray dims, jobjectArray labels,
                      struct batch *b, const char *what) {
  memset(b, 0, sizeof *b);
  if (images == NULL) return 1; /* empty */
  if (null_arg(env, dims, "dims")) return 0;
  jsize n = (*env)->GetArrayLength(env, images);
  if ((*env)->GetArrayLength(env, dims) != 2 * n ||
      (labels != NULL && (*env)->GetArrayLength(env, labels) != n)) {
    illegal_argument(env, "images, dims and labels disagree in length");
    return 0;
  }
  b->count = (size_t)n;
  b->images = (CsraImage *)calloc((size_t)n + 1, sizeof(CsraImage));
  b->pixels = (uint8_t **)calloc((size_t)n + 1, sizeof(uint8_t *));
  b->labels = (uint8_t **)calloc((size_t)n + 1, sizeof(uint8_t *));
  b->label_ptrs = (const uint8_t **)calloc((size_t)n + 1, sizeof(uint8_t *));
  jint *d = (jint *)malloc(sizeof(jint) * (2 * (size_t)n + 1));
  if (!b->images || !b->pixels || !b->labels || !b->label_ptrs || !d) {
    free(d);
    batch_free(b);
    throw_java(env, "java/lang/OutOfMemoryError", "csranet: out of native memory");
    return 0;
  }
  (*env)->GetIntArrayRegion(env, dims, 0, 2 * n, d);
  for (jsize k = 0; k < n; k++) {
    jint w = d[2 * k], h = d[2 * k + 1];
    if (w < 0 || h < 0) {
      free(d);
      batch_free(b);
      illegal_argument(env, "tile sizes must not be negative");
      return 0;
    }
    jbyteArray img = (jbyteArray)(*env)->GetObjectArrayElement(env, images, k);
    size_t len = 0;
    b->pixels[k] = copy_bytes(env, img, 0, &len, what);
    (*env)->DeleteLocalRef(env, img);
    if (b->pixels[k] == NULL) {
      free(d);
      batch_free(b);
      return 0;
    }
    b->images[k] = (CsraImage){b->pixels[k], len, (uint32_t)w, (uint32_t)h, (size_t)w * 3,
                               CSRA_PIXEL_RGB8};
    if (labels != NULL) {
      jbyteArray lab = (jbyteArray)(*env)->GetObjectArrayElement(env, labels, k);
      size_t llen = 0;
      b->labels[k] = copy_bytes(env, lab, 0, &llen, "label");
      (*env)->DeleteLocalRef(env, lab);
      if (b->labels[k] == NULL) {
        free(d);
        batch_free(b);
        return 0;
      }
      /* The C API reads width * height label bytes: never hand it fewer. */
      if (llen != (size_t)w * (size_t)h) {
        free(d);
        batch_free(b);
        illegal_argument(env, "a label map does not have width * height bytes");
        return 0;
      }
      b->label_ptrs[k] = b->labels[k];
    }
  }
  free(d);
  return 1;
}

JNIEXPORT jdoubleArray JNICALL Java_io_csranet_Native_trainerStep(
    JNIEnv *env, jclass cls, jlong trainer, jobjectArray images, jintArray dims,
    jobjectArray labels, jobjectArray uimages, jintArray udims) {
  (void)cls;
  if (bad_handle(env, trainer, "trainer") || null_arg(env, images, "labelled images") ||
      null_arg(env, labels, "labels"))
    return NULL;
  struct batch lb, ub;
  if (!batch_read(env, images, dims, labels, &lb, "labelled image")) return NULL;
  if (!batch_read(env, uimages, udims, NULL, &ub, "unlabelled image")) {
    batch_free(&lb);
    return NULL;
  }
  CsraTrainBatch l = {lb.images, lb.label_ptrs, lb.count};
  CsraTrainBatch u = {ub.images, NULL, ub.count};
  CsraStepReport r;
  CsraStatus s = csra_trainer_step((CsraTrainer *)(intptr_t)trainer, &l,
                                   uimages != NULL ? &u : NULL, &r);
  batch_free(&lb);
  batch_free(&ub);
  if (failed(env, s)) return NULL;
  jdouble v[8] = {(jdouble)r.step,      r.loss,    r.loss_sup, r.loss_unsup, r.loss_contrast,
                  r.loss_fp,            r.confident_ratio,     r.lr};
  jdoubleArray a = (*env)->NewDoubleArray(env, 8);
  if (a != NULL) (*env)->SetDoubleArrayRegion(env, a, 0, 8, v);
  return a;
}

JNIEXPORT void JNICALL Java_io_csranet_Native_trainerSave(JNIEnv *env, jclass cls, jlong trainer,
                                                         jlong sampler, jbyteArray path) {
  (void)cls;
  if (bad_handle(env, trainer, "trainer")) return;
  char *p = copy_path(env, path);
  if (p == NULL) return;
  CsraStatus s = csra_trainer_save_checkpoint((const CsraTrainer *)(intptr_t)trainer,
                                              (const CsraSampler *)(intptr_t)sampler, p);
  free(p);
  failed(env, s);
}

JNIEXPORT void JNICALL Java_io_csranet_Native_trainerLoad(JNIEnv *env, jclass cls, jlong trainer,
                                                         jlong sampler, jbyteArray path) {
  (void)cls;
  if (bad_handle(env, trainer, "trainer")) return;
  char *p = copy_path(env, path);
  if (p == NULL) return;
  CsraStatus s = csra_trainer_load_checkpoint((CsraTrainer *)(intptr_t)trainer,
                                              (CsraSampler *)(intptr_t)sampler, p);
  free(p);
  failed(env, s);
}

JNIEXPORT void JNICALL Java_io_csranet_Native_trainerFree(JNIEnv *env, jclass cls,
                                                         jlong trainer) {
  (void)env;
  (void)cls;
  csra_trainer_free((CsraTrainer *)(intptr_t)trainer);
}

/* ---------------------------------------------------------------------------------------- */
/* CAS sampler */

JNIEXPORT jlong JNICALL Java_io_csranet_Native_samplerCreate(JNIEnv *env, jclass cls,
                                                            jintArray tissue, jbyteArray presence,
                                                            jint n, jint num_classes,
                                                            jfloat alpha0, jint period,
                                                            jint total_epochs, jlong seed) {
  (void)cls;
  if (null_arg(env, presence, "presence")) return 0;
  if (n < 0 || num_classes < 0 || period < 0 || total_epochs < 0) {
    illegal_argument(env, "sampler sizes must not be negative");
    return 0;
  }
  if ((int64_t)(*env)->GetArrayLength(env, presence) != (int64_t)n * num_classes ||
      (tissue != NULL && (*env)->GetArrayLength(env, tissue) != n)) {
    illegal_argument(env, "presence must have n * numClasses values and tissueIds n");
    return 0;
  }
  size_t plen = 0;
  uint8_t *p = copy_bytes(env, presence, 0, &plen, "presence");
  if (p == NULL) return 0;
  int32_t *t = NULL;
  if (tissue != NULL) {
    t = (int32_t *)malloc(sizeof(int32_t) * ((size_t)n + 1));
    if (t == NULL) {
      free(p);
      throw_java(env, "java/lang/OutOfMemoryError", "csranet: out of native memory");
      return 0;
    }
    (*env)->GetIntArrayRegion(env, tissue, 0, n, (jint *)t);
  }
  CsraSampler *s = NULL;
  CsraStatus st = csra_sampler_create(t, p, (size_t)n, (size_t)num_classes, alpha0,
                                      (uint32_t)period, (uint32_t)total_epochs, (uint64_t)seed, &s);
  free(p);
  free(t);
  if (failed(env, st)) return 0;
  return (jlong)(intptr_t)s;
}

JNIEXPORT void JNICALL Java_io_csranet_Native_samplerSetEpoch(JNIEnv *env, jclass cls,
                                                             jlong sampler, jint epoch) {
  (void)cls;
  if (bad_handle(env, sampler, "sampler")) return;
  if (epoch < 0) {
    illegal_argument(env, "epoch must not be negative");
    return;
  }
  failed(env, csra_sampler_set_epoch((CsraSampler *)(intptr_t)sampler, (uint32_t)epoch));
}

JNIEXPORT jlong JNICALL Java_io_csranet_Native_samplerNext(JNIEnv *env, jclass cls,
                                                          jlong sampler) {
  (void)cls;
  if (bad_handle(env, sampler, "sampler")) return -1;
  size_t out = 0;
  if (failed(env, csra_sampler_next((CsraSampler *)(intptr_t)sampler, &out))) return -1;
  return (jlong)out;
}

JNIEXPORT void JNICALL Java_io_csranet_Native_samplerFree(JNIEnv *env, jclass cls,
                                                         jlong sampler) {
  (void)env;
  (void)cls;
  csra_sampler_free((CsraSampler *)(intptr_t)sampler);
}
