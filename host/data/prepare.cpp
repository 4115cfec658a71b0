#include "host/data/prepare.h"

#include "host/util/atomic_file.h"

#include "host/data/image_tensor.h"
#include "host/data/parallel.h"
#include "host/util/cache_key.h"

#include <bachlab/sdk/hash.h>
#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/core/version.hpp>
#include <opencv2/imgproc.hpp>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// Cache file layout (native byte order; the file is a local cache, never shipped):
//   "BACHPREP" | u32 format | u64 key length | key text | u64 N | u32 H | u32 W
//   | u64 skipped count | (u64 length | text) per skipped photo
//   | i64 kept[N] (indices into the input file list) | i64 labels[N] | u8 images[N*3*H*W]
//   | u32 crc32 of everything after the magic up to here | "BACHEND!"
// The images are one block, read with one read() straight into the tensor.
constexpr char kMagic[8] = {'B', 'A', 'C', 'H', 'P', 'R', 'E', 'P'};
constexpr char kEndMagic[8] = {'B', 'A', 'C', 'H', 'E', 'N', 'D', '!'};
constexpr uint32_t kCacheFormat = 2;
constexpr size_t kMaxListedPhotos = 30;

struct CacheKey {
  std::string identity;  // parameters and paths: names the file
  std::string full;      // identity plus every photo's size and mtime: must match exactly
};

// "image_size 128" or "scale 0.5": the resize rule, for keys and file names.
std::string resize_text(const DataConfig& config) {
  return config.scale > 0 ? fmt::format("scale {:.9g}", config.scale) : fmt::format("image_size {}", config.image_size);
}

CacheKey make_key(const Dataset& dataset, const DataConfig& config, const std::optional<StainTarget>& stain) {
  std::string params = fmt::format("bachlab prepared images\nprepare {}\nopencv {}\n{}\non_bad_image {}\n",
                                   kPrepareVersion, CV_VERSION, resize_text(config), kBadImages.name(config.on_bad_image));
  if (stain) params += "stain " + stain->key() + "\n";
  params += "classes";
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

// A hint only: the kernel may ignore it (transparent huge pages off), and reading works the same.
void advise_huge_pages(void* data, size_t size) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t start = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) & ~(kHuge - 1);
  if (end > start) ::madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
}

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
  // get() for the images block (about 1 GB for BACH at scale 0.5), the part of loading a
  // cache that must stay under 2 s: zlib's CRC-32 runs at about 0.5 GB/s on this VM, so the
  // block's halves are summed on two threads and combined; and the fresh tensor is asked
  // for huge pages, since faulting in 4 KB pages costs as much as the copy.
  bool get_block(void* data, size_t size) {
    advise_huge_pages(data, size);
    if (!raw(data, size)) return false;
    const auto* bytes = static_cast<const Bytef*>(data);
    const size_t half = size / 2;
    uLong second = 0;
    std::thread worker([&] { second = crc32_z(crc32_z(0, nullptr, 0), bytes + half, size - half); });
    crc_ = crc32_z(crc_, bytes, half);
    worker.join();
    crc_ = crc32_combine(crc_, second, z_off_t(size - half));
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
bool load_cache(const fs::path& file, const CacheKey& key, CacheContent& content, std::string& note, bool& corrupt) {
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
  uint32_t height = 0, width = 0;
  if (!in.get_value(count) || !in.get_value(height) || !in.get_value(width) || !in.get_value(skipped))
    return bad("it is truncated");
  if (height == 0 || width == 0 || height > 65536 || width > 65536) return bad("its image size is impossible");
  const uint64_t pixels = uint64_t(3) * height * width;
  // Checked before allocating, so a damaged count cannot ask for terabytes.
  if (count > in.remaining() / (16 + pixels) || skipped > in.remaining()) return bad("it is truncated");
  for (uint64_t i = 0; i < skipped; ++i) {
    std::string text;
    if (!in.get_text(text)) return bad("it is truncated");
    content.skipped.push_back(std::move(text));
  }
  content.kept.resize(count);
  content.labels = torch::empty({int64_t(count)}, torch::kInt64);
  content.images = torch::empty({int64_t(count), 3, int64_t(height), int64_t(width)}, torch::kUInt8);
  if (!in.get(content.kept.data(), count * 8) || !in.get(content.labels.data_ptr<int64_t>(), count * 8) ||
      !in.get_block(content.images.data_ptr<uint8_t>(), count * pixels))
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
std::string write_cache(const fs::path& file, const CacheKey& key, const CacheContent& content) {
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
  out.put_value(uint32_t(content.images.size(2)));
  out.put_value(uint32_t(content.images.size(3)));
  out.put_value(uint64_t(content.skipped.size()));
  for (const auto& text : content.skipped) out.put_text(text);
  out.put(content.kept.data(), count * 8);
  out.put(content.labels.data_ptr<int64_t>(), count * 8);
  out.put(content.images.data_ptr<uint8_t>(), size_t(content.images.numel()));
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

// The photo's size at `scale`: each side rounded, at least 1 pixel.
cv::Size scaled_size(cv::Size photo, double scale) {
  return {std::max(1, int(std::lround(photo.width * scale))), std::max(1, int(std::lround(photo.height * scale)))};
}

// The training resize: image_size x image_size, or by `scale` keeping the aspect ratio;
// INTER_AREA when a side shrinks (it averages every source pixel instead of sampling a few).
void resize_for_training(const cv::Mat& rgb, const DataConfig& config, cv::Mat& out) {
  if (config.scale <= 0) return resize_square(rgb, config.image_size, out);
  const cv::Size size = scaled_size(rgb.size(), config.scale);
  if (size == rgb.size()) {
    rgb.copyTo(out);
    return;
  }
  cv::resize(rgb, out, size, 0, 0, size.width < rgb.cols || size.height < rgb.rows ? cv::INTER_AREA : cv::INTER_LINEAR);
}

std::string opencv_failed(const fs::path& file, const cv::Exception& e) {
  return fmt::format("{}: OpenCV failed to process it ({}); copy the file again from the original dataset or remove it",
                     file.string(), e.err);
}

CacheContent decode_all(const Dataset& dataset, const DataConfig& config) {
  const size_t n = dataset.files.size();
  const int workers = std::min<int>(resolve_workers(config.workers), int(n));
  std::vector<std::string> errors(n);
  // One full-size decode buffer per worker, reused for every photo it takes: memory is
  // bounded by the worker count, not by the number of photos.
  std::vector<cv::Mat> full(static_cast<size_t>(workers)), small(static_cast<size_t>(workers));
  // At `scale` the output size is the first photo's, so photos are decoded in order until
  // one works; every other photo must then come out the same size.
  cv::Size size(config.image_size, config.image_size);
  size_t first = 0;
  fs::path first_file;
  if (config.scale > 0) {
    for (; first < n; ++first) {
      try {
        const fs::path& file = dataset.files[first];
        decode_image_rgb(file, full[0], config.max_pixels);
        resize_for_training(full[0], config, small[0]);
        size = small[0].size();
        first_file = file;
        break;
      } catch (const Error& e) {
        errors[first] = e.what();
      } catch (const cv::Exception& e) {
        errors[first] = opencv_failed(dataset.files[first], e);
      }
    }
  }
  torch::Tensor images =
      torch::empty({int64_t(n), 3, int64_t(first < n ? size.height : 1), int64_t(first < n ? size.width : 1)},
                   torch::kUInt8);
  if (config.scale > 0 && first < n) copy_to_chw(small[0], images[int64_t(first)]);
  const size_t start = config.scale > 0 ? std::min(n, first + 1) : 0;
  Progress progress("decoding photos", n);
  progress.advance(start);
  parallel_for(n - start, workers, [&](size_t j, int w) {
    const size_t i = start + j;
    const fs::path& file = dataset.files[i];
    try {
      decode_image_rgb(file, full[size_t(w)], config.max_pixels);
      resize_for_training(full[size_t(w)], config, small[size_t(w)]);
      if (small[size_t(w)].size() != size) {
        const cv::Size photo = full[size_t(w)].size();
        throw Error(fmt::format("{}: is {}x{}, which at [data] scale = {:.6g} gives {}x{}, but {} gives {}x{}; all "
                                "photos of a set must share one size at a scale (resize or remove this photo, or "
                                "use image_size instead of scale)",
                                file.string(), photo.width, photo.height, config.scale, small[size_t(w)].cols,
                                small[size_t(w)].rows, first_file.string(), size.width, size.height));
      }
      copy_to_chw(small[size_t(w)], images[int64_t(i)]);
    } catch (const Error& e) {
      errors[i] = e.what();
    } catch (const cv::Exception& e) {
      errors[i] = opencv_failed(file, e);
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
  if (!bad.empty() && config.on_bad_image != BadImages::skip) {
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

fs::path cache_file_for(const CacheKey& key, const DataConfig& config, const std::optional<StainTarget>& stain) {
  const std::string size =
      config.scale > 0 ? fmt::format("scale{:.6g}", config.scale) : fmt::format("{}px", config.image_size);
  return config.cache_dir / "prepared" /
         fmt::format("{:016x}-{}{}.bin", sdk::hash_text(key.identity), size, stain ? "-" + kStainMethods.name(stain->method) : std::string());
}

// The stain target prepare_dataset() uses: none, the one given, or the reference photo's.
std::optional<StainTarget> choose_stain_target(const DataConfig& config, const std::optional<StainTarget>& given) {
  if (config.stain_normalize == StainMethod::none) return std::nullopt;
  if (given) {
    if (given->method != config.stain_normalize)
      throw Error(fmt::format("prepare_dataset: the stain target was fitted for \"{}\" but [data] stain_normalize = "
                              "\"{}\"; fit it with the config's method",
                              kStainMethods.name(given->method), kStainMethods.name(config.stain_normalize)));
    return given;
  }
  if (!config.stain_reference.empty()) return fit_stain_reference(config);
  throw Error(fmt::format("prepare_dataset: [data] stain_normalize = \"{}\" without stain_reference fits its target "
                          "on the training photos, and none was given; prepare with stain_normalize = \"none\", fit "
                          "the target on the training rows with fit_stain_target() and pass it (bachlab run does this "
                          "for each split and fold), or set stain_reference",
                          kStainMethods.name(config.stain_normalize)));
}

// Normalises every image of `content` in place on all workers; returns how many photos had
// too little tissue and were left as they were.
size_t normalize_all(CacheContent& content, const StainTarget& target, const DataConfig& config) {
  const size_t n = size_t(content.images.size(0));
  std::vector<char> changed(n, 1);
  Progress progress("normalising stains", n);
  parallel_for(n, std::min<int>(resolve_workers(config.workers), int(n)), [&](size_t i, int) {
    changed[i] = normalize_stain_chw(content.images[int64_t(i)], target) ? 1 : 0;
    progress.advance();
  });
  progress.finish();
  return size_t(std::count(changed.begin(), changed.end(), 0));
}

// The prepared content for (dataset, config, stain) from the cache or built, with `out`'s
// cache fields filled. A normalised set is built from the unnormalised one (itself cached),
// so a new target - another fold's, another reference - never decodes the photos again.
CacheContent load_or_build(const Dataset& dataset, const DataConfig& config, const std::optional<StainTarget>& stain,
                           PreparedData& out) {
  const CacheKey key = make_key(dataset, config, stain);
  out.cache_file = cache_file_for(key, config, stain);
  CacheContent content;
  bool corrupt = false;
  out.from_cache = load_cache(out.cache_file, key, content, out.cache_note, corrupt);
  if (corrupt) std::cerr << "warning: " << out.cache_file.string() << ": " << out.cache_note << "\n";
  if (out.from_cache) return content;
  if (stain) {
    DataConfig plain = config;
    plain.stain_normalize = StainMethod::none;
    plain.stain_reference.clear();
    PreparedData unnormalised;
    content = load_or_build(dataset, plain, std::nullopt, unnormalised);
    out.stain_unchanged = normalize_all(content, *stain, config);
    if (const size_t unchanged = out.stain_unchanged; unchanged > 0)
      out.cache_note += fmt::format("; stain normalisation left {} photo{} with too little tissue as {}", unchanged,
                                    unchanged == 1 ? "" : "s", unchanged == 1 ? "it was" : "they were");
  } else {
    content = decode_all(dataset, config);
  }
  if (std::string why = write_cache(out.cache_file, key, content); !why.empty()) {
    out.cache_note += "; cache not written: " + why;
    std::cerr << "warning: preprocessing cache not written: " << why
              << "; the next run will decode again (set [data] cache_dir to a writable folder)\n";
    out.cache_file.clear();
  }
  return content;
}

}  // namespace

fs::path prepared_cache_file(const Dataset& dataset, const DataConfig& config,
                             const std::optional<StainTarget>& stain_target) {
  const std::optional<StainTarget> stain = choose_stain_target(config, stain_target);
  return cache_file_for(make_key(dataset, config, stain), config, stain);
}

PreparedData prepare_dataset(const Dataset& dataset, const DataConfig& config,
                             const std::optional<StainTarget>& stain_target) {
  if (dataset.files.empty()) throw Error("prepare_dataset: the dataset has no photos; discover_dataset() never returns "
                                         "an empty one, so this dataset was built by hand");
  if (dataset.labels.size() != dataset.files.size())
    throw Error(fmt::format("prepare_dataset: {} files but {} labels", dataset.files.size(), dataset.labels.size()));
  if (config.image_size < 1) throw Error(fmt::format("prepare_dataset: image_size must be >= 1 (was {})", config.image_size));
  if (!(config.scale >= 0 && config.scale <= 1))
    throw Error(fmt::format("prepare_dataset: scale must be 0 (off) or in (0, 1] (was {})", config.scale));

  PreparedData out;
  out.stain_target = choose_stain_target(config, stain_target);
  CacheContent content = load_or_build(dataset, config, out.stain_target, out);
  out.images = content.images;
  out.labels = content.labels;
  out.dataset = select(dataset, content.kept);
  out.dataset.skipped.insert(out.dataset.skipped.end(), content.skipped.begin(), content.skipped.end());
  return out;
}

StainTarget fit_stain_reference(const DataConfig& config) {
  const fs::path& file = config.stain_reference;
  if (config.stain_normalize == StainMethod::none || file.empty())
    throw Error("fit_stain_reference: the config names no stain_reference with stain_normalize on");
  cv::Mat rgb, small;
  try {
    decode_image_rgb(file, rgb, config.max_pixels);
    resize_for_training(rgb, config, small);
    StainTarget target = fit_stain_target(config.stain_normalize, {small});
    target.fitted_on = "reference photo " + file.string();
    return target;
  } catch (const Error& e) {
    throw Error(fmt::format("{}[data] stain_reference = \"{}\": {}", config.origin.empty() ? "" : config.origin + ": ",
                            file.string(), e.what()));
  }
}

torch::Tensor preprocess_photo(const fs::path& file, const DataConfig& config,
                               const std::optional<StainTarget>& stain_target) {
  const std::optional<StainTarget> stain = choose_stain_target(config, stain_target);
  cv::Mat rgb, small;
  decode_image_rgb(file, rgb, config.max_pixels);
  resize_for_training(rgb, config, small);
  if (stain) normalize_stain(small, *stain, small);
  torch::Tensor out = torch::empty({3, small.rows, small.cols}, torch::kUInt8);
  copy_to_chw(small, out);
  return out;
}

Normalization fit_normalization(const torch::Tensor& uint8_images, const DataConfig& config) {
  Normalization out;
  if (config.normalize != InputScaling::standardize) return out;
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
