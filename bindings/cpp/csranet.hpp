// csranet.hpp: header-only C++17 wrapper over csranet's C API (include/csranet.h).
//
// Move-only RAII handles over std::unique_ptr with custom deleters; every failing call
// throws csranet::Error carrying the CsraStatus and the library's message. `capi()` gives
// the raw handle for C calls; `release()` hands its ownership to the caller.
//
//   csranet::Model model = csranet::Model::fromFile("weights.safetensors");
//   csranet::Image image = csranet::Image::rgb(pixels.data(), width, height);
//   csranet::Segmentation seg = model.segmentTile(image);
//   for (const csranet::Instance& nucleus : seg.instances()) { ... }
//
// Thread safety is the C API's: segmentations may run concurrently on one Model (a const
// method); load() is exclusive and waits for them; a Segmentation is immutable.
// The error message is read from the calling thread, so errors are never mixed up
// between threads.

#ifndef CSRANET_HPP
#define CSRANET_HPP

#include <csranet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace csranet {

/// The name of a status code, e.g. "CSRA_IO_ERROR".
inline const char* statusName(CsraStatus status) noexcept {
  switch (status) {
    case CSRA_OK: return "CSRA_OK";
    case CSRA_NULL_ARGUMENT: return "CSRA_NULL_ARGUMENT";
    case CSRA_INVALID_ARGUMENT: return "CSRA_INVALID_ARGUMENT";
    case CSRA_IO_ERROR: return "CSRA_IO_ERROR";
    case CSRA_BAD_WEIGHTS: return "CSRA_BAD_WEIGHTS";
    case CSRA_CANCELLED: return "CSRA_CANCELLED";
    case CSRA_NOT_AVAILABLE: return "CSRA_NOT_AVAILABLE";
    case CSRA_NUMERIC_ERROR: return "CSRA_NUMERIC_ERROR";
    case CSRA_UNSUPPORTED: return "CSRA_UNSUPPORTED";
    case CSRA_INTERNAL_ERROR: return "CSRA_INTERNAL_ERROR";
  }
  return "unknown CsraStatus";
}

/// A failed csranet call: `status()` is its code, `what()` the library's message.
class Error : public std::runtime_error {
 public:
  Error(CsraStatus status, const std::string& message)
      : std::runtime_error(message.empty() ? statusName(status) : message), status_(status) {}

  CsraStatus status() const noexcept { return status_; }

 private:
  CsraStatus status_;
};

/// Throws `Error` with the thread's last error message unless `status` is CSRA_OK.
inline void check(CsraStatus status) {
  if (status != CSRA_OK) {
    throw Error(status, csra_last_error_message());
  }
}

/// The library's version string (the header's is CSRA_VERSION_STRING).
inline std::string version() { return csra_version_string(); }

/// True when the loaded library has the version of the header compiled against.
inline bool versionMatches() noexcept {
  return csra_version() ==
         ((uint32_t{CSRA_VERSION_MAJOR} << 16) | (uint32_t{CSRA_VERSION_MINOR} << 8) |
          uint32_t{CSRA_VERSION_PATCH});
}

/// A read-only view of an array owned by a Segmentation (valid while it lives).
template <class T>
class View {
 public:
  View() noexcept = default;
  View(const T* data, std::size_t size) noexcept : data_(data), size_(size) {}

  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// Bounds-checked access.
  const T& at(std::size_t i) const {
    if (i >= size_) throw std::out_of_range("csranet::View::at");
    return data_[i];
  }

 private:
  const T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A caller-owned 8-bit image (not copied; it must outlive the call that uses it).
class Image {
 public:
  /// `height` rows of `stride` bytes in `data[0..len]`; the library checks the sizes.
  Image(const std::uint8_t* data, std::size_t len, std::uint32_t width, std::uint32_t height,
        std::size_t stride, CsraPixelFormat format) noexcept {
    raw_.data = data;
    raw_.len = len;
    raw_.width = width;
    raw_.height = height;
    raw_.stride = stride;
    raw_.format = static_cast<std::uint32_t>(format);
  }

  /// Tightly packed RGB (3 bytes per pixel, no row padding).
  static Image rgb(const std::uint8_t* data, std::uint32_t width, std::uint32_t height) noexcept {
    const std::size_t stride = std::size_t{width} * 3;
    return Image(data, stride * height, width, height, stride, CSRA_PIXEL_RGB8);
  }

  std::uint32_t width() const noexcept { return raw_.width; }
  std::uint32_t height() const noexcept { return raw_.height; }
  const CsraImage& capi() const noexcept { return raw_; }

 private:
  CsraImage raw_{};
};

/// Network configuration (`CsraModelConfig`); public fields, change them freely.
struct ModelConfig : CsraModelConfig {
  /// A preset: "lite" (ResNet-18 at half width) or "paper" (ResNet-50).
  static ModelConfig preset(const char* name = "lite") {
    ModelConfig c;
    check(csra_model_config_default(name, &c));
    return c;
  }

 private:
  ModelConfig() noexcept : CsraModelConfig() {}
  friend class Model;
};

/// Segmentation options (`CsraSegmentOptions`), the library's defaults until changed.
struct Options : CsraSegmentOptions {
  Options() : CsraSegmentOptions() { check(csra_segment_options_default(this)); }
};

/// One nucleus, copied out of a Segmentation (it owns its polygon).
struct Instance {
  std::uint32_t id = 0;       ///< 1-based; its value in labels().
  std::uint32_t classId = 0;  ///< >= 1 (0 is background).
  float score = 0;            ///< Mean probability of the class over the nucleus.
  std::uint32_t area = 0;     ///< Pixels.
  std::array<float, 2> centroid{};    ///< x, y in pixel-corner coordinates.
  std::array<std::uint32_t, 4> bbox{};  ///< x0, y0, x1, y1 (end-exclusive).
  std::vector<std::array<float, 2>> polygon;  ///< Simple, implicitly closed outline.
};

namespace detail {
struct ModelDeleter {
  void operator()(CsraModel* p) const noexcept { csra_model_free(p); }
};
struct SegmentationDeleter {
  void operator()(CsraSegmentation* p) const noexcept { csra_segmentation_free(p); }
};
}  // namespace detail

/// The result of a segmentation: class map, instance labels, optional probabilities and
/// instances. Views it returns live as long as this object.
class Segmentation final {
 public:
  /// Takes ownership of a C handle (may be null only to make an empty object).
  explicit Segmentation(CsraSegmentation* raw) noexcept : ptr_(raw) {}
  Segmentation(Segmentation&&) noexcept = default;
  Segmentation& operator=(Segmentation&&) noexcept = default;
  Segmentation(const Segmentation&) = delete;
  Segmentation& operator=(const Segmentation&) = delete;
  ~Segmentation() = default;

  std::uint32_t width() const { return size()[0]; }
  std::uint32_t height() const { return size()[1]; }
  std::uint32_t numClasses() const { return size()[2]; }

  /// `width * height` class indices, row-major, 0 = background.
  View<std::uint8_t> classMap() const {
    const std::uint8_t* data = nullptr;
    std::size_t len = 0;
    check(csra_segmentation_class_map(ptr_.get(), &data, &len));
    return {data, len};
  }

  /// `width * height` instance ids, row-major, 0 = background.
  View<std::uint32_t> labels() const {
    const std::uint32_t* data = nullptr;
    std::size_t len = 0;
    check(csra_segmentation_labels(ptr_.get(), &data, &len));
    return {data, len};
  }

  /// True unless the segmentation ran with `keep_probabilities = 0`.
  bool hasProbabilities() const {
    const float* data = nullptr;
    std::size_t len = 0;
    const CsraStatus s = csra_segmentation_probabilities(ptr_.get(), &data, &len);
    if (s == CSRA_NOT_AVAILABLE) return false;
    check(s);
    return true;
  }

  /// `numClasses * height * width` probabilities, class-major; throws Error
  /// (CSRA_NOT_AVAILABLE) when they were not kept.
  View<float> probabilities() const {
    const float* data = nullptr;
    std::size_t len = 0;
    check(csra_segmentation_probabilities(ptr_.get(), &data, &len));
    return {data, len};
  }

  std::size_t numInstances() const {
    std::size_t n = 0;
    check(csra_segmentation_num_instances(ptr_.get(), &n));
    return n;
  }

  /// Instance `index` (0-based); throws Error (CSRA_INVALID_ARGUMENT) when out of range.
  Instance instance(std::size_t index) const {
    CsraInstance raw{};
    check(csra_segmentation_instance(ptr_.get(), index, &raw));
    Instance out;
    out.id = raw.id;
    out.classId = raw.class_id;
    out.score = raw.score;
    out.area = raw.area;
    out.centroid = {raw.centroid_x, raw.centroid_y};
    out.bbox = {raw.bbox_x0, raw.bbox_y0, raw.bbox_x1, raw.bbox_y1};
    out.polygon.reserve(raw.polygon_len);
    for (std::size_t i = 0; i < raw.polygon_len; ++i) {
      out.polygon.push_back({raw.polygon[2 * i], raw.polygon[2 * i + 1]});
    }
    return out;
  }

  /// Every instance, in id order.
  std::vector<Instance> instances() const {
    const std::size_t n = numInstances();
    std::vector<Instance> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(instance(i));
    return out;
  }

  /// The C handle, still owned by this object.
  const CsraSegmentation* capi() const noexcept { return ptr_.get(); }
  /// Gives up ownership: the caller must csra_segmentation_free() the handle.
  CsraSegmentation* release() noexcept { return ptr_.release(); }

 private:
  std::array<std::uint32_t, 3> size() const {
    std::array<std::uint32_t, 3> s{};
    check(csra_segmentation_size(ptr_.get(), &s[0], &s[1], &s[2]));
    return s;
  }

  std::unique_ptr<CsraSegmentation, detail::SegmentationDeleter> ptr_;
};

/// A CSRA-Net model. Create with `create`, `fromFile` or `fromBuffer`.
class Model final {
 public:
  /// `done` of `total` tiles finished; return false to cancel.
  using Progress = std::function<bool(std::uint32_t done, std::uint32_t total)>;

  /// Takes ownership of a C handle.
  explicit Model(CsraModel* raw) noexcept : ptr_(raw) {}
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model() = default;

  /// A randomly initialised model (seed and device in `config`).
  static Model create(const ModelConfig& config) {
    CsraModel* raw = nullptr;
    check(csra_model_create(&config, &raw));
    return Model(raw);
  }

  /// A model from a safetensors file written by csranet, on the CPU.
  static Model fromFile(const std::string& path) {
    CsraModel* raw = nullptr;
    check(csra_model_create_from_safetensors(path.c_str(), &raw));
    return Model(raw);
  }

  /// A model from a safetensors buffer written by csranet (copied), on the CPU.
  static Model fromBuffer(const void* data, std::size_t len) {
    CsraModel* raw = nullptr;
    check(csra_model_create_from_safetensors_buffer(static_cast<const std::uint8_t*>(data), len,
                                                    &raw));
    return Model(raw);
  }
  static Model fromBuffer(const std::vector<std::uint8_t>& bytes) {
    return fromBuffer(bytes.data(), bytes.size());
  }

  /// Replaces the weights from a file; on error the model keeps its weights.
  void load(const std::string& path) {
    check(csra_model_load_safetensors(ptr_.get(), path.c_str()));
  }
  /// Replaces the weights from a buffer; on error the model keeps its weights.
  void load(const void* data, std::size_t len) {
    check(csra_model_load_safetensors_buffer(ptr_.get(), static_cast<const std::uint8_t*>(data),
                                             len));
  }

  /// Writes the weights (f32) atomically.
  void save(const std::string& path) const {
    check(csra_model_save_safetensors(ptr_.get(), path.c_str()));
  }

  ModelConfig config() const {
    ModelConfig c;
    check(csra_model_get_config(ptr_.get(), &c));
    return c;
  }

  /// Number of classes, background (class 0) included.
  std::size_t numClasses() const {
    std::size_t n = 0;
    check(csra_model_num_classes(ptr_.get(), &n));
    return n;
  }

  /// Name of class `index` (0 = background), as stored with the weights (a copy); throws
  /// Error(CSRA_INVALID_ARGUMENT) when `index >= numClasses()`.
  std::string className(std::size_t index) const {
    const char* name = nullptr;
    check(csra_model_class_name(ptr_.get(), index, &name));
    return std::string(name);
  }

  /// Colour of class `index` as {red, green, blue}; throws like className.
  std::array<std::uint8_t, 3> classColour(std::size_t index) const {
    std::array<std::uint8_t, 3> rgb{};
    check(csra_model_class_colour(ptr_.get(), index, rgb.data()));
    return rgb;
  }

  /// Segments a whole image in one pass (up to 2048x2048). `options` null: defaults.
  Segmentation segmentTile(const Image& image, const Options* options = nullptr) const {
    CsraSegmentation* raw = nullptr;
    check(csra_segment_tile(ptr_.get(), &image.capi(), options, &raw));
    return Segmentation(raw);
  }

  /// Segments a large image by overlapping tiles. `progress` (may be empty) is called
  /// after each batch; returning false cancels and throws Error(CSRA_CANCELLED). An
  /// exception thrown by `progress` cancels the native call and is rethrown here.
  Segmentation segmentImage(const Image& image, const Options* options = nullptr,
                            const Progress& progress = nullptr) const {
    CsraSegmentation* raw = nullptr;
    if (!progress) {
      check(csra_segment_image(ptr_.get(), &image.capi(), options, nullptr, nullptr, &raw));
      return Segmentation(raw);
    }
    ProgressState state{&progress, nullptr};
    const CsraStatus status =
        csra_segment_image(ptr_.get(), &image.capi(), options, &trampoline, &state, &raw);
    Segmentation result(raw);  // freed if anything below throws
    if (state.error) std::rethrow_exception(state.error);
    check(status);
    return result;
  }

  /// The C handle, still owned by this object.
  CsraModel* capi() noexcept { return ptr_.get(); }
  const CsraModel* capi() const noexcept { return ptr_.get(); }
  /// Gives up ownership: the caller must csra_model_free() the handle.
  CsraModel* release() noexcept { return ptr_.release(); }

 private:
  struct ProgressState {
    const Progress* fn;
    std::exception_ptr error;
  };

  // Called from Rust: no exception may unwind through it. One thrown by the callback is
  // kept, the native call is cancelled, and segmentImage rethrows it.
  static std::int32_t trampoline(void* user_data, std::uint32_t done,
                                 std::uint32_t total) noexcept {
    auto* state = static_cast<ProgressState*>(user_data);
    try {
      return (*state->fn)(done, total) ? 0 : 1;
    } catch (...) {
      state->error = std::current_exception();
      return 1;
    }
  }

  std::unique_ptr<CsraModel, detail::ModelDeleter> ptr_;
};

}  // namespace csranet

#endif  // CSRANET_HPP
