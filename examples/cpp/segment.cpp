// Segments a binary PPM (P6) image with the C++ wrapper (bindings/cpp/csranet.hpp).
//
//   segment <weights.safetensors | -> <image.ppm>
//
// The same job and output as examples/c/segment.c: with `-` a randomly initialised `lite`
// model (seed 42), else a safetensors file written by csranet; one single-tile pass and
// one tiled pass (128-pixel tiles, 32 overlap) with progress. It also checks that a
// failing call (a missing weights file) throws csranet::Error with the native message.
//
// Build: c++ -std=c++17 -Iinclude -Ibindings/cpp examples/cpp/segment.cpp -Ltarget/release -lcsranet

#include <csranet.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

// Reads an 8-bit binary PPM; throws std::runtime_error on anything else.
std::vector<std::uint8_t> readPpm(const std::string& path, std::uint32_t& width,
                                  std::uint32_t& height) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::string magic;
  in >> magic;
  auto field = [&in]() {
    long v = -1;
    while (in >> std::ws && in.peek() == '#') {
      std::string comment;
      std::getline(in, comment);
    }
    in >> v;
    return v;
  };
  const long w = field(), h = field(), maxval = field();
  if (magic != "P6" || w <= 0 || h <= 0 || w > 1000000 || h > 1000000 || maxval != 255) {
    throw std::runtime_error(path + ": not an 8-bit binary PPM (P6)");
  }
  in.get();  // the single whitespace byte before the raster
  std::vector<std::uint8_t> data(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3);
  if (!in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()))) {
    throw std::runtime_error(path + ": truncated raster");
  }
  width = static_cast<std::uint32_t>(w);
  height = static_cast<std::uint32_t>(h);
  return data;
}

// A failing native call must surface as csranet::Error with the library's message.
bool errorsThrow() {
  const std::string missing = "/nonexistent/csranet/missing.safetensors";
  try {
    csranet::Model::fromFile(missing);
  } catch (const csranet::Error& e) {
    const std::string message = e.what();
    if (e.status() != CSRA_IO_ERROR || message.find("missing.safetensors") == std::string::npos) {
      std::cerr << "error: unexpected " << csranet::statusName(e.status()) << ": " << message
                << "\n";
      return false;
    }
    std::cout << "missing weights: " << csranet::statusName(e.status()) << "\n";
    return true;
  }
  std::cerr << "error: loading a missing file did not throw\n";
  return false;
}

// A progress callback that returns false cancels (Error CSRA_CANCELLED); one that throws
// cancels too, and its exception comes out of segmentImage unchanged.
bool cancellationWorks(const csranet::Model& model, const csranet::Image& image,
                       const csranet::Options& options) {
  try {
    model.segmentImage(image, &options, [](std::uint32_t, std::uint32_t) { return false; });
    std::cerr << "error: returning false did not cancel\n";
    return false;
  } catch (const csranet::Error& e) {
    if (e.status() != CSRA_CANCELLED) {
      std::cerr << "error: cancelling gave " << csranet::statusName(e.status()) << "\n";
      return false;
    }
  }
  struct Stop {
    std::uint32_t done;
  };
  try {
    model.segmentImage(image, &options, [](std::uint32_t done, std::uint32_t) -> bool {
      throw Stop{done};
    });
    std::cerr << "error: a throwing callback did not cancel\n";
    return false;
  } catch (const Stop& stop) {
    std::cout << "cancelled: after " << stop.done << " tiles\n";
  }
  return true;
}

int run(const std::string& weights, const std::string& ppm) {
  if (!csranet::versionMatches()) {
    std::cerr << "error: header " << CSRA_VERSION_STRING << " does not match library "
              << csranet::version() << "\n";
    return 1;
  }
  std::cout << "csranet " << csranet::version() << "\n";

  csranet::Model model = [&] {
    if (weights != "-") return csranet::Model::fromFile(weights);
    csranet::ModelConfig config = csranet::ModelConfig::preset("lite");
    config.seed = 42;
    return csranet::Model::create(config);
  }();

  std::uint32_t width = 0, height = 0;
  const std::vector<std::uint8_t> pixels = readPpm(ppm, width, height);
  std::cout << "image: " << width << "x" << height << "\n";
  const csranet::Image image = csranet::Image::rgb(pixels.data(), width, height);

  const csranet::Segmentation seg = model.segmentTile(image);
  const std::uint32_t classes = seg.numClasses();
  if (seg.width() != width || seg.height() != height || seg.classMap().size() != pixels.size() / 3) {
    std::cerr << "error: result size does not match the image\n";
    return 1;
  }
  std::vector<std::size_t> perClass(classes), pixelsPerClass(classes);
  for (std::uint8_t c : seg.classMap()) {
    if (c < classes) ++pixelsPerClass[c];
  }
  const std::vector<csranet::Instance> instances = seg.instances();
  for (const csranet::Instance& nucleus : instances) {
    if (nucleus.classId < classes) ++perClass[nucleus.classId];
  }
  std::cout << "instances: " << instances.size() << "\n";
  for (std::uint32_t k = 1; k < classes; ++k) {
    const std::array<std::uint8_t, 3> rgb = model.classColour(k);
    char colour[8];
    std::snprintf(colour, sizeof colour, "#%02x%02x%02x", static_cast<unsigned>(rgb[0]),
                  static_cast<unsigned>(rgb[1]), static_cast<unsigned>(rgb[2]));
    std::cout << "class " << k << " (" << model.className(k) << ", " << colour
              << "): " << perClass[k] << " instances, " << pixelsPerClass[k] << " pixels\n";
  }

  csranet::Options options;
  options.tile_size = 128;
  options.overlap = 32;
  options.keep_probabilities = 0;
  unsigned calls = 0;
  const csranet::Segmentation tiled =
      model.segmentImage(image, &options, [&calls](std::uint32_t done, std::uint32_t total) {
        ++calls;
        std::cout << "progress: " << done << "/" << total << "\n";
        return true;  // false would cancel
      });
  if (calls == 0) {
    std::cerr << "error: the progress callback was never called\n";
    return 1;
  }
  std::cout << "tiled instances: " << tiled.numInstances() << "\n";

  return errorsThrow() && cancellationWorks(model, image, options) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " <weights.safetensors | -> <image.ppm>\n";
    return 2;
  }
  try {
    return run(argv[1], argv[2]);
  } catch (const csranet::Error& e) {
    std::cerr << "error: " << csranet::statusName(e.status()) << ": " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
  }
  return 1;
}
