#include "host/data/prepare.h"

#include "host/util/atomic_file.h"

#include "host/data/image_decode.h"
#include "host/data/parallel.h"
#include "host/util/cache_key.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/core/version.hpp>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// Cache file layout (native byte order; the file is a local cache, never shipped):
//   "BACHPREP" | u32 format | u64 key length | key text | u64 N | u32 S
//   | u64 skipped count | (u64 length | text) per skipped photo
//   | i64 kept[N] (indices into the input file list) | i64 labels[N] | u8 images[N*3*S*S]
//   | u32 crc32 of everything after the magic up to here | "BACHEND!"
constexpr char kMagic[8] = {'B', 'A', 'C', 'H', 'P', 'R', 'E', 'P'};
constexpr char kEndMagic[8] = {'B', 'A', 'C', 'H', 'E', 'N', 'D', '!'};
constexpr uint32_t kCacheFormat = 1;
constexpr size_t kMaxListedPhotos = 30;

struct CacheKey {
  std::string identity;  // parameters and paths: names the file
  std::string full;      // identity plus every photo's size and mtime: must match exactly
};

CacheKey make_key(const Dataset& dataset, const DataConfig& config) {
  std::string params = fmt::format(
      "bachlab prepared images\nprepare {}\nopencv {}\nimage_size {}\non_bad_image {}\nclasses", kPrepareVersion,
      CV_VERSION, config.image_size, config.on_bad_image);
  for (const auto& c : dataset.classes) params += " " + c;
  params += "\n";
  // Only when changed, so that caches made before the setting existed stay valid.
  if (config.max_pixels != kDefaultMaxPixels) params += fmt::format("max_pixels {}\n", config.max_pixels);
  CacheKey key{params, params};
  for (size_t i = 0; i < dataset.files.size(); ++i) {
    const fs::path absolute = fs::absolute(dataset.files[i]);
    std::error_code ec;
    const auto size = fs::file_size(absolute, ec);
    if (ec)
      throw Error(fmt::format("{}: cannot read the file's size ({}); was it removed after the dataset was listed?",
                              absolute.string(), ec.message()));
    const auto mtime = fs::last_write_time(absolute, ec).time_since_epoch().count();
    key.identity += fmt::format("file {} {}\n", dataset.labels[i], absolute.string());
    key.full += fmt::format("file {} {} {} {}\n", dataset.labels[i], size, mtime, absolute.string());
  }
  return key;
}

// Which line first differs, in words, for "cache is stale: ...".
std::string stale_reason(const std::string& stored, const std::string& current) {
  const auto lines = first_differing_lines(stored, current);
  if (!lines) return "its key differs";
  const std::string& right = lines->second;
  if (right.rfind("file ", 0) == 0) {
    // "file <label> <size> <mtime> <path>": the path is the rest after four fields.
    size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string::npos; ++field) pos = right.find(' ', pos + 1);
    if (pos != std::string::npos) return right.substr(pos + 1) + " changed (size or modification time)";
  }
  return "\"" + (right.empty() ? lines->first : right) + "\" changed";
}

class CacheWriter {
 public:
  explicit CacheWriter(const fs::path& path) : out_(path, std::ios::binary) {}
  bool ok() const { return bool(out_); }
  void raw(const void* data, size_t size) { out_.write(static_cast<const char*>(data), std::streamsize(size)); }
  void put(const void* data, size_t size) {
    crc_ = crc32_z(crc_, static_cast<const Bytef*>(data), size);
    raw(data, size);
  }
  template <typename T>
  void put_value(T value) {
    put(&value, sizeof value);
  }
  void put_text(const std::string& text) {
    put_value<uint64_t>(text.size());
    put(text.data(), text.size());
  }
  uint32_t crc() const { return uint32_t(crc_); }
  bool close() {
    out_.close();
    return !out_.fail();
  }

 private:
  std::ofstream out_;
  uLong crc_ = crc32_z(0, nullptr, 0);
};

class CacheReader {
 public:
  explicit CacheReader(const fs::path& path) : in_(path, std::ios::binary) {
    std::error_code ec;
    remaining_ = fs::file_size(path, ec);
    if (ec) in_.setstate(std::ios::failbit);
  }
  bool ok() const { return bool(in_); }
  uint64_t remaining() const { return remaining_; }
  // Reads exactly `size` bytes; false (and no read) if the file is shorter.
  bool raw(void* data, size_t size) {
    if (size > remaining_) return false;
    in_.read(static_cast<char*>(data), std::streamsize(size));
    remaining_ -= size;
    return bool(in_);
  }
  bool get(void* data, size_t size) {
    if (!raw(data, size)) return false;
    crc_ = crc32_z(crc_, static_cast<const Bytef*>(data), size);
    return true;
  }
  template <typename T>
  bool get_value(T& value) {
    return get(&value, sizeof value);
  }
  bool get_text(std::string& text) {
    uint64_t size = 0;
    if (!get_value(size) || size > remaining_) return false;
    text.resize(size);
    return get(text.data(), size);
  }
  uint32_t crc() const { return uint32_t(crc_); }

 private:
  std::ifstream in_;
  uint64_t remaining_ = 0;
  uLong crc_ = crc32_z(0, nullptr, 0);
};

struct CacheContent {
  std::vector<int64_t> kept;
  std::vector<std::string> skipped;
  torch::Tensor images;
  torch::Tensor labels;
};

// Loads the cache if it is intact and made for `key`; otherwise says why in `note`.
bool load_cache(const fs::path& file, const CacheKey& key, int size, CacheContent& content, std::string& note,
                bool& corrupt) {
  corrupt = false;
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    note = "no cache yet";
    return false;
  }
  CacheReader in(file);
  auto bad = [&](const std::string& why) {
    note = fmt::format("cache was corrupt ({}); rebuilt it", why);
    corrupt = true;
    return false;
  };
  char magic[8];
  if (!in.ok() || !in.raw(magic, sizeof magic) || std::memcmp(magic, kMagic, 8) != 0)
    return bad("it does not start with the bachlab cache header");
  uint32_t format = 0;
  if (!in.get_value(format)) return bad("it is truncated");
  if (format != kCacheFormat) {
    note = fmt::format("cache is stale: written in format {}, this build reads format {}", format, kCacheFormat);
    return false;
  }
  std::string stored_key;
  if (!in.get_text(stored_key)) return bad("it is truncated");
  if (stored_key != key.full) {
    note = "cache is stale: " + stale_reason(stored_key, key.full);
    return false;
  }
  uint64_t count = 0, skipped = 0;
  uint32_t stored_size = 0;
  if (!in.get_value(count) || !in.get_value(stored_size) || !in.get_value(skipped)) return bad("it is truncated");
  if (int(stored_size) != size) return bad("its image size disagrees with its key");
  const uint64_t pixels = uint64_t(3) * size * size;
  // Checked before allocating, so a damaged count cannot ask for terabytes.
  if (count > in.remaining() / (16 + pixels) || skipped > in.remaining()) return bad("it is truncated");
  for (uint64_t i = 0; i < skipped; ++i) {
    std::string text;
    if (!in.get_text(text)) return bad("it is truncated");
    content.skipped.push_back(std::move(text));
  }
  content.kept.resize(count);
  content.labels = torch::empty({int64_t(count)}, torch::kInt64);
  content.images = torch::empty({int64_t(count), 3, size, size}, torch::kUInt8);
  if (!in.get(content.kept.data(), count * 8) || !in.get(content.labels.data_ptr<int64_t>(), count * 8) ||
      !in.get(content.images.data_ptr<uint8_t>(), count * pixels))
    return bad("it is truncated");
  const uint32_t computed = in.crc();
  uint32_t stored_crc = 0;
  char end[8];
  if (!in.raw(&stored_crc, sizeof stored_crc) || !in.raw(end, sizeof end)) return bad("it is truncated");
  if (std::memcmp(end, kEndMagic, 8) != 0 || in.remaining() != 0) return bad("its end marker is wrong");
  if (stored_crc != computed)
    return bad(fmt::format("checksum {:08x} expected, {:08x} found", stored_crc, computed));
  note = "loaded from cache";
  return true;
}

// Written to a temp file in the same folder and renamed, so a reader never sees half a
// file and two runs preparing at once each leave a whole one.
std::string write_cache(const fs::path& file, const CacheKey& key, int size, const CacheContent& content) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) return fmt::format("cannot create {} ({})", file.parent_path().string(), ec.message());
  // Cache files of killed runs' half-written temporaries are as large as the cache itself.
  remove_orphaned_temp_files(file.parent_path());
  static std::atomic<int> counter{0};
  const fs::path temp = file.string() + fmt::format(".tmp-{}-{}", getpid(), counter++);
  CacheWriter out(temp);
  if (!out.ok()) return fmt::format("cannot create {} ({})", temp.string(), std::strerror(errno));
  out.raw(kMagic, sizeof kMagic);
  out.put_value(kCacheFormat);
  out.put_text(key.full);
  const uint64_t count = content.kept.size();
  out.put_value(count);
  out.put_value(uint32_t(size));
  out.put_value(uint64_t(content.skipped.size()));
  for (const auto& text : content.skipped) out.put_text(text);
  out.put(content.kept.data(), count * 8);
  out.put(content.labels.data_ptr<int64_t>(), count * 8);
  out.put(content.images.data_ptr<uint8_t>(), count * 3 * size_t(size) * size);
  const uint32_t crc = out.crc();
  out.raw(&crc, sizeof crc);
  out.raw(kEndMagic, sizeof kEndMagic);
  if (!out.close()) {
    fs::remove(temp, ec);
    return fmt::format("writing {} failed (disk full?)", temp.string());
  }
  fs::rename(temp, file, ec);
  if (ec) {
    std::string why = fmt::format("cannot rename {} to {} ({})", temp.string(), file.string(), ec.message());
    fs::remove(temp, ec);
    return why;
  }
  return "";
}

CacheContent decode_all(const Dataset& dataset, const DataConfig& config) {
  const size_t n = dataset.files.size();
  const int size = config.image_size;
  const int workers = std::min<int>(resolve_workers(config.workers), int(n));
  torch::Tensor images = torch::empty({int64_t(n), 3, size, size}, torch::kUInt8);
  std::vector<std::string> errors(n);
  // One full-size decode buffer per worker, reused for every photo it takes: memory is
  // bounded by the worker count, not by the number of photos.
  std::vector<cv::Mat> full(static_cast<size_t>(workers)), small(static_cast<size_t>(workers));
  Progress progress("decoding photos", n);
  parallel_for(n, workers, [&](size_t i, int w) {
    const fs::path& file = dataset.files[i];
    try {
      decode_image_rgb(file, full[size_t(w)], config.max_pixels);
      resize_square(full[size_t(w)], size, small[size_t(w)]);
      copy_to_chw(small[size_t(w)], images[int64_t(i)]);
    } catch (const Error& e) {
      errors[i] = e.what();
    } catch (const cv::Exception& e) {
      errors[i] = fmt::format("{}: OpenCV failed to process it ({}); copy the file again from the original dataset "
                              "or remove it",
                              file.string(), e.err);
    } catch (const std::exception& e) {
      errors[i] = fmt::format("{}: cannot be processed ({})", file.string(), e.what());
    }
    progress.advance();
  });
  progress.finish();

  CacheContent content;
  std::vector<std::string> bad;
  for (size_t i = 0; i < n; ++i) {
    if (errors[i].empty()) {
      content.kept.push_back(int64_t(i));
    } else {
      bad.push_back(errors[i]);
    }
  }
  if (!bad.empty() && config.on_bad_image != "skip") {
    std::string message = fmt::format("{} of {} photos cannot be used:", bad.size(), n);
    for (size_t i = 0; i < bad.size() && i < kMaxListedPhotos; ++i) message += "\n- " + bad[i];
    if (bad.size() > kMaxListedPhotos) message += fmt::format("\n- ... and {} more", bad.size() - kMaxListedPhotos);
    message += "\nfix or remove these files, or set [data] on_bad_image = \"skip\" to leave them out";
    throw Error(message);
  }
  if (content.kept.empty())
    throw Error(fmt::format("{}: none of the {} photos could be decoded (first: {}); fix or replace the files",
                            dataset.root.string(), n, bad.front()));
  content.skipped = bad;
  if (bad.empty()) {
    content.images = images;
  } else {
    content.images = images.index_select(0, torch::tensor(content.kept, torch::kInt64));
  }
  content.labels = torch::empty({int64_t(content.kept.size())}, torch::kInt64);
  int64_t* labels = content.labels.data_ptr<int64_t>();
  for (size_t k = 0; k < content.kept.size(); ++k) labels[k] = dataset.labels[size_t(content.kept[k])];
  return content;
}

fs::path cache_file_for(const CacheKey& key, const DataConfig& config) {
  return config.cache_dir / "prepared" / fmt::format("{:016x}-{}px.bin", fnv1a(key.identity), config.image_size);
}

}  // namespace

fs::path prepared_cache_file(const Dataset& dataset, const DataConfig& config) {
  return cache_file_for(make_key(dataset, config), config);
}

PreparedData prepare_dataset(const Dataset& dataset, const DataConfig& config) {
  if (dataset.files.empty()) throw Error("prepare_dataset: the dataset has no photos; discover_dataset() never returns "
                                         "an empty one, so this dataset was built by hand");
  if (dataset.labels.size() != dataset.files.size())
    throw Error(fmt::format("prepare_dataset: {} files but {} labels", dataset.files.size(), dataset.labels.size()));
  if (config.image_size < 1) throw Error(fmt::format("prepare_dataset: image_size must be >= 1 (was {})", config.image_size));

  const CacheKey key = make_key(dataset, config);
  PreparedData out;
  out.cache_file = cache_file_for(key, config);
  CacheContent content;
  bool corrupt = false;
  out.from_cache = load_cache(out.cache_file, key, config.image_size, content, out.cache_note, corrupt);
  if (corrupt) std::cerr << "warning: " << out.cache_file.string() << ": " << out.cache_note << "\n";
  if (!out.from_cache) {
    content = decode_all(dataset, config);
    if (std::string why = write_cache(out.cache_file, key, config.image_size, content); !why.empty()) {
      out.cache_note += "; cache not written: " + why;
      std::cerr << "warning: preprocessing cache not written: " << why
                << "; the next run will decode again (set [data] cache_dir to a writable folder)\n";
      out.cache_file.clear();
    }
  }
  out.images = content.images;
  out.labels = content.labels;
  out.dataset = select(dataset, content.kept);
  out.dataset.skipped.insert(out.dataset.skipped.end(), content.skipped.begin(), content.skipped.end());
  return out;
}

Normalization fit_normalization(const torch::Tensor& uint8_images, const DataConfig& config) {
  Normalization out;
  if (config.normalize != "standardize") return out;
  if (uint8_images.dim() != 4 || uint8_images.size(1) != 3 || uint8_images.scalar_type() != torch::kUInt8)
    throw Error(fmt::format("fit_normalization: expected uint8 images of shape (N, 3, H, W) (was {} {})",
                            std::string(c10::toString(uint8_images.scalar_type())),
                            c10::str(uint8_images.sizes())));
  if (uint8_images.size(0) == 0) throw Error("fit_normalization: no images to compute the mean and std from");
  // Counting each intensity gives the exact mean and std without a float copy of the set.
  const torch::Tensor images = uint8_images.contiguous();
  const int64_t plane = images.size(2) * images.size(3);
  const uint8_t* data = images.data_ptr<uint8_t>();
  std::array<std::array<uint64_t, 256>, 3> counts{};
  for (int64_t n = 0; n < images.size(0); ++n)
    for (int c = 0; c < 3; ++c) {
      const uint8_t* p = data + (n * 3 + c) * plane;
      for (int64_t i = 0; i < plane; ++i) ++counts[size_t(c)][p[i]];
    }
  const double total = double(images.size(0)) * double(plane);
  for (size_t c = 0; c < 3; ++c) {
    double sum = 0, squares = 0;
    for (int v = 0; v < 256; ++v) {
      const double x = v / 255.0;
      sum += counts[c][size_t(v)] * x;
      squares += counts[c][size_t(v)] * x * x;
    }
    const double mean = sum / total;
    const double variance = std::max(0.0, squares / total - mean * mean);
    out.mean[c] = float(mean);
    // A constant channel would divide by zero; leave it unscaled.
    out.std[c] = variance > 1e-12 ? float(std::sqrt(variance)) : 1.f;
  }
  return out;
}

torch::Tensor to_float_batch(const torch::Tensor& uint8_images, const Normalization& normalization) {
  if (uint8_images.dim() != 4 || uint8_images.size(1) != 3 || uint8_images.scalar_type() != torch::kUInt8)
    throw Error(fmt::format("to_float_batch: expected uint8 images of shape (N, 3, H, W) (was {} {})",
                            std::string(c10::toString(uint8_images.scalar_type())),
                            c10::str(uint8_images.sizes())));
  torch::Tensor out = uint8_images.to(torch::kFloat32).div_(255.0);
  const auto& m = normalization.mean;
  const auto& s = normalization.std;
  if (m != std::array<float, 3>{0.f, 0.f, 0.f})
    out.sub_(torch::tensor({m[0], m[1], m[2]}, torch::kFloat32).view({1, 3, 1, 1}));
  if (s != std::array<float, 3>{1.f, 1.f, 1.f})
    out.div_(torch::tensor({s[0], s[1], s[2]}, torch::kFloat32).view({1, 3, 1, 1}));
  return out;
}

torch::Tensor one_hot_labels(const torch::Tensor& labels, int64_t classes) {
  return torch::one_hot(labels.to(torch::kInt64), classes).to(torch::kFloat32);
}

}  // namespace bachlab::host
