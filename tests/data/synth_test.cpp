// The synthetic dataset folder: what every other test, benchmark and the quick start stand
// on. The drawing's own tests are in synth_drawing_test.cpp.
#include "host/data/synth.h"
#include "host/util/folder_lock.h"
#include "tests/data/synth_checks.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <tiffio.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <thread>

namespace fs = std::filesystem;
using bachlab::Error;
using namespace bachlab::host;
using bachlab::test::error_of;
using bachlab::test::same_pixels;

namespace {

// A fresh folder per test, removed afterwards, so tests never see each other's files.
class SynthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() /
            fmt::format("bachlab-synth-test-{}-{}-{}", ::getpid(),
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), counter++);
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  SynthOptions small(const std::string& name, uint64_t seed = 5) const {
    SynthOptions options;
    options.out = root_ / name;
    options.per_class = 3;
    options.width = 32;
    options.height = 24;
    options.seed = seed;
    options.workers = 2;
    return options;
  }

  fs::path root_;
};

std::string read_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

std::vector<std::string> listing(const fs::path& root) {
  std::vector<std::string> names;
  for (const auto& entry : fs::recursive_directory_iterator(root)) names.push_back(fs::relative(entry.path(), root).string());
  std::sort(names.begin(), names.end());
  return names;
}

// Reads an 8-bit RGB TIFF with libtiff alone, checking the tags the dataset promises.
cv::Mat read_tiff(const fs::path& path) {
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  EXPECT_NE(tif, nullptr) << path;
  if (!tif) return {};
  uint32_t width = 0, height = 0, rows_per_strip = 0;
  uint16_t samples = 0, bits = 0, photometric = 0, planar = 0, compression = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  EXPECT_EQ(samples, 3);
  EXPECT_EQ(bits, 8);
  EXPECT_EQ(photometric, PHOTOMETRIC_RGB);
  EXPECT_EQ(planar, PLANARCONFIG_CONTIG);
  EXPECT_EQ(compression, COMPRESSION_NONE) << "BACH's photos are uncompressed, and so are the synthetic ones";
  EXPECT_GE(rows_per_strip, 1u);
  EXPECT_LE(rows_per_strip, height);
  cv::Mat image(static_cast<int>(height), static_cast<int>(width), CV_8UC3);
  for (uint32_t y = 0; y < height; ++y) EXPECT_EQ(TIFFReadScanline(tif, image.ptr(static_cast<int>(y)), y, 0), 1);
  TIFFClose(tif);
  return image;
}

// Runs the `bachlab` program; returns its exit code and fills `err` with its stderr.
int run_bachlab(const std::string& arguments, std::string& err, const fs::path& scratch) {
  const fs::path stderr_file = scratch / "stderr.txt";
  const std::string command =
      fmt::format("'{}/bachlab' {} 2>'{}' >/dev/null", BACHLAB_BINARY_DIR, arguments, stderr_file.string());
  const int status = std::system(command.c_str());
  err = read_bytes(stderr_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(SynthNames, ClassesAndFileNamesAreBachs) {
  EXPECT_EQ(bach_classes(), (std::vector<std::string>{"Normal", "Benign", "InSitu", "Invasive"}));
  EXPECT_EQ(synthetic_file_name(0, 1), "n001.tif");
  EXPECT_EQ(synthetic_file_name(1, 42), "b042.tif");
  EXPECT_EQ(synthetic_file_name(2, 100), "is100.tif");
  EXPECT_EQ(synthetic_file_name(3, 7), "iv007.tif");
  EXPECT_EQ(synthetic_file_name(3, 1000), "iv1000.tif");
}

TEST(SynthDraw, ImageSeedsDifferPerClassAndIndex) {
  std::set<uint64_t> seeds;
  for (int k = 0; k < 4; ++k)
    for (int i = 1; i <= 50; ++i) seeds.insert(synthetic_image_seed(9, k, i));
  EXPECT_EQ(seeds.size(), 200u);
  EXPECT_EQ(synthetic_image_seed(9, 1, 3), synthetic_image_seed(9, 1, 3));
  EXPECT_NE(synthetic_image_seed(9, 1, 3), synthetic_image_seed(10, 1, 3));
}

TEST(SynthSize, ParsesWidthByHeight) {
  EXPECT_EQ(parse_synth_size("2048x1536"), cv::Size(2048, 1536));
  EXPECT_EQ(parse_synth_size("224X224"), cv::Size(224, 224));
  const std::string expected_tail = "; write the two numbers joined by an 'x'";
  EXPECT_EQ(error_of([] { parse_synth_size("2048*1536"); }),
            "synth: the image size expects WIDTHxHEIGHT in pixels such as 2048x1536 (was '2048*1536')" + expected_tail);
  for (const char* bad : {"", "x", "224", "224x", "x224", "-3x4", "22 x 33", "99999999999x2", "3x4x5"})
    EXPECT_EQ(error_of([&] { parse_synth_size(bad); }),
              fmt::format("synth: the image size expects WIDTHxHEIGHT in pixels such as 2048x1536 (was '{}')", bad) +
                  expected_tail)
        << bad;
}

TEST_F(SynthTest, LayoutAndGroundTruthAreBachs) {
  const SynthOptions options = small("set");
  generate_synthetic_dataset(options);
  std::vector<std::string> expected{"Photos", "Photos/Benign", "Photos/InSitu", "Photos/Invasive", "Photos/Normal",
                                    "Photos/microscopy_ground_truth.csv", "synth.json"};
  for (const auto& [folder, prefix] : std::vector<std::pair<std::string, std::string>>{
           {"Normal", "n"}, {"Benign", "b"}, {"InSitu", "is"}, {"Invasive", "iv"}})
    for (int i = 1; i <= 3; ++i) expected.push_back(fmt::format("Photos/{}/{}00{}.tif", folder, prefix, i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listing(options.out), expected);
  EXPECT_EQ(read_bytes(options.out / "Photos" / "microscopy_ground_truth.csv"),
            "n001.tif,Normal\nn002.tif,Normal\nn003.tif,Normal\n"
            "b001.tif,Benign\nb002.tif,Benign\nb003.tif,Benign\n"
            "is001.tif,InSitu\nis002.tif,InSitu\nis003.tif,InSitu\n"
            "iv001.tif,Invasive\niv002.tif,Invasive\niv003.tif,Invasive\n");
  const auto record = nlohmann::json::parse(read_bytes(options.out / "synth.json"));
  EXPECT_EQ(record["generator"], "bachlab synth");
  EXPECT_EQ(record["generator_version"], kSynthGeneratorVersion);
  EXPECT_EQ(record["per_class"], 3);
  EXPECT_EQ(record["width"], 32);
  EXPECT_EQ(record["height"], 24);
  EXPECT_EQ(record["seed"], 5);
  EXPECT_EQ(record["images"], 12);
  // Nothing left beside it: the partial folder was renamed into place.
  EXPECT_EQ(listing(root_).front(), "set");
  for (const auto& name : listing(root_)) EXPECT_EQ(name.rfind("set", 0), 0u) << name;
}

TEST_F(SynthTest, TiffsReadBackAsTheDrawnImages) {
  SynthOptions options = small("set", 21);
  options.width = 40;
  options.height = 30;
  options.per_class = 2;
  generate_synthetic_dataset(options);
  for (int k = 0; k < 4; ++k) {
    for (int i = 1; i <= 2; ++i) {
      const fs::path file = options.out / "Photos" / bach_classes()[k] / synthetic_file_name(k, i);
      const cv::Mat read = read_tiff(file);
      ASSERT_EQ(read.cols, 40) << file;
      ASSERT_EQ(read.rows, 30) << file;
      EXPECT_TRUE(same_pixels(read, draw_synthetic_image(k, 40, 30, synthetic_image_seed(21, k, i)))) << file;
    }
  }
}

TEST_F(SynthTest, WorkerCountNeverChangesAByte) {
  SynthOptions one = small("one"), two = small("two");
  one.workers = 1;
  two.workers = 2;
  generate_synthetic_dataset(one);
  generate_synthetic_dataset(two);
  ASSERT_EQ(listing(one.out), listing(two.out));
  for (const auto& name : listing(one.out)) {
    if (fs::is_directory(one.out / name)) continue;
    EXPECT_EQ(read_bytes(one.out / name), read_bytes(two.out / name)) << name;
  }
}

TEST_F(SynthTest, SameOptionsAgainDoNothingAndSaySo) {
  const SynthOptions options = small("set");
  generate_synthetic_dataset(options);
  const auto written = fs::last_write_time(options.out / "Photos" / "Normal" / "n001.tif");
  ::testing::internal::CaptureStderr();
  generate_synthetic_dataset(options);
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(said, fmt::format("synth: '{}' already holds this dataset (12 images, 32x24, seed 5); nothing to do\n",
                              options.out.string()));
  EXPECT_EQ(fs::last_write_time(options.out / "Photos" / "Normal" / "n001.tif"), written);
}

TEST_F(SynthTest, EmptyFolderIsFilled) {
  const SynthOptions options = small("set");
  fs::create_directories(options.out);
  generate_synthetic_dataset(options);
  EXPECT_TRUE(fs::exists(options.out / "Photos" / "Invasive" / "iv003.tif"));
}

TEST_F(SynthTest, RefusesAFolderWithOtherFiles) {
  const SynthOptions options = small("set");
  fs::create_directories(options.out);
  std::ofstream(options.out / "notes.txt") << "mine\n";
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(options); }),
            fmt::format("synth: output folder '{}' already contains files (such as 'notes.txt') and is not a synthetic "
                        "dataset; choose another output folder or empty the folder",
                        options.out.string()));
  EXPECT_EQ(listing(options.out), (std::vector<std::string>{"notes.txt"}));
  EXPECT_EQ(listing(root_), (std::vector<std::string>{"set", "set/notes.txt"}));
}

TEST_F(SynthTest, RefusesADatasetMadeWithOtherOptions) {
  generate_synthetic_dataset(small("set", 5));
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(small("set", 6)); }),
            fmt::format("synth: output folder '{}' holds a synthetic dataset made with other options (variant "
                        "default, per-class 3, size 32x24, seed 5, generator version {}; asked for variant default, "
                        "per-class 3, size 32x24, seed 6, generator version {}); choose another output folder or remove the "
                        "folder",
                        (root_ / "set").string(), kSynthGeneratorVersion, kSynthGeneratorVersion));
}

TEST_F(SynthTest, RefusesADatasetWithAFileMissing) {
  const SynthOptions options = small("set");
  generate_synthetic_dataset(options);
  fs::remove(options.out / "Photos" / "InSitu" / "is002.tif");
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(options); }),
            fmt::format("synth: output folder '{}' holds a synthetic dataset made with the same options but "
                        "'Photos/InSitu/is002.tif' is missing; remove the folder and run again",
                        options.out.string()));
}

TEST_F(SynthTest, RefusesAFileAsOutput) {
  const SynthOptions options = small("file.tif");
  std::ofstream(options.out) << "x";
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(options); }),
            fmt::format("synth: '{}' exists and is not a folder; choose another output folder or remove the file",
                        options.out.string()));
}

TEST_F(SynthTest, BadOptionsAreNamed) {
  SynthOptions options = small("set");
  options.per_class = 0;
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(options); }),
            "synth: per_class must be between 1 and 99999 (was 0); give the number of images to draw for each class");
  options = small("set");
  options.workers = -1;
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(options); }),
            "synth: workers must be 0 (all cores) or a positive thread count (was -1)");
  options = small("set");
  options.height = 20000;
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(options); }),
            "synth: the image size must be between 8x8 and 16384x16384 (was 32x20000); give WIDTHxHEIGHT such as "
            "2048x1536");
  options = small("set");
  options.out.clear();
  EXPECT_EQ(error_of([&] { generate_synthetic_dataset(options); }),
            "synth: the output path is empty; give the dataset folder to create, e.g. data/bach-synth");
  EXPECT_TRUE(fs::is_empty(root_));
}

TEST_F(SynthTest, StalePartialFolderOfAKilledRunIsRemoved) {
  // No process has pid 2^22+1 (Linux caps pids at 2^22), so this partial is stale.
  const fs::path stale = root_ / ".set.synth-partial-4194305";
  fs::create_directories(stale / "Photos" / "Normal");
  generate_synthetic_dataset(small("set"));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_EQ(listing(root_).front(), "set");
}

// The command line, through the real program. Its stderr is not a terminal, so it says
// only the summary: no line per image or per tenth of the set (issue #21 item 11).
TEST_F(SynthTest, CommandWritesTheDatasetAndNamesBadSizes) {
  std::string err;
  const fs::path out = root_ / "cli";
  ASSERT_EQ(run_bachlab(fmt::format("synth --out '{}' --per-class 5 --size 24x16 --seed 3 --workers 2", out.string()), err,
                        root_),
            0)
      << err;
  const std::string said = fmt::format("synth: wrote 20 images (5 per class, 24x16, seed 3) to '{}' in ", out.string());
  EXPECT_EQ(err.substr(0, said.size()), said);
  EXPECT_TRUE(std::regex_match(err.substr(std::min(said.size(), err.size())), std::regex("[0-9]+\\.[0-9] s\n"))) << err;
  EXPECT_TRUE(same_pixels(read_tiff(out / "Photos" / "InSitu" / "is001.tif"),
                          draw_synthetic_image(2, 24, 16, synthetic_image_seed(3, 2, 1))));
  EXPECT_EQ(run_bachlab(fmt::format("synth --out '{}' --size 24by16", (root_ / "other").string()), err, root_), 1);
  EXPECT_EQ(err,
            "error: synth: --size expects WIDTHxHEIGHT in pixels such as 2048x1536 (was '24by16'); write the two numbers "
            "joined by an 'x'\n");
  EXPECT_FALSE(fs::exists(root_ / "other"));
}

// The data layer names SynthOptions' members; the command names the flag the user typed,
// with the same rule and the value found.
TEST_F(SynthTest, CommandNamesTheFlagOfEveryBadOption) {
  const fs::path out = root_ / "set";
  const fs::path file = root_ / "file.tif";
  std::ofstream(file) << "x";
  const fs::path taken = root_ / "taken";
  fs::create_directories(taken);
  std::ofstream(taken / "notes.txt") << "mine\n";
  const std::vector<std::pair<std::string, std::string>> cases{
      {fmt::format("--out '{}' --per-class 0", out.string()),
       "synth: --per-class must be between 1 and 99999 (was 0); give the number of images to draw for each class"},
      {fmt::format("--out '{}' --size 5x5", out.string()),
       "synth: --size must be between 8x8 and 16384x16384 (was 5x5); give WIDTHxHEIGHT such as 2048x1536"},
      {fmt::format("--out '{}' --workers=-1", out.string()),
       "synth: --workers must be 0 (all cores) or a positive thread count (was -1)"},
      {"--out ''", "synth: --out is empty; give the dataset folder to create, e.g. data/bach-synth"},
      {fmt::format("--out '{}' --size 16x16", file.string()),
       fmt::format("synth: '{}' exists and is not a folder; choose another --out or remove the file", file.string())},
      {fmt::format("--out '{}' --size 16x16", taken.string()),
       fmt::format("synth: output folder '{}' already contains files (such as 'notes.txt') and is not a synthetic "
                   "dataset; choose another --out or empty the folder",
                   taken.string())}};
  for (const auto& [arguments, message] : cases) {
    std::string err;
    EXPECT_EQ(run_bachlab("synth " + arguments, err, root_), 1) << arguments;
    EXPECT_EQ(err, "error: " + message + "\n") << arguments;
  }
  EXPECT_FALSE(fs::exists(out));
}

// Writing a TIFF through memory and atomically must not change a byte: FNV-1a of files of
// `bachlab synth --per-class 3 --size 40x30 --seed 21` and `--per-class 2 --size 300x200
// --seed 5 --variant nuclear` as the build before the change wrote them (libtiff straight
// into the file).
TEST_F(SynthTest, TiffFilesAreTheBytesTheyWereBefore) {
  auto fnv = [](const std::string& bytes) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
    return h;
  };
  SynthOptions options = small("set", 21);
  options.width = 40;
  options.height = 30;
  generate_synthetic_dataset(options);
  const fs::path photos = options.out / "Photos";
  EXPECT_EQ(fnv(read_bytes(photos / "Normal" / "n001.tif")), 0x8ed4a934b074faaaULL);
  EXPECT_EQ(fnv(read_bytes(photos / "Benign" / "b002.tif")), 0x35bb82a5f76b76c9ULL);
  EXPECT_EQ(fnv(read_bytes(photos / "InSitu" / "is003.tif")), 0xd71deb12277ba2aaULL);
  EXPECT_EQ(fnv(read_bytes(photos / "Invasive" / "iv001.tif")), 0x2a3bd09dbd332426ULL);
  SynthOptions nuclear = small("nuclear", 5);
  nuclear.per_class = 2;
  nuclear.width = 300;
  nuclear.height = 200;
  nuclear.variant = "nuclear";
  generate_synthetic_dataset(nuclear);
  const std::string is002 = read_bytes(nuclear.out / "Photos" / "InSitu" / "is002.tif");
  EXPECT_EQ(is002.size(), 180266u);
  EXPECT_EQ(fnv(is002), 0x38079869fc0814a3ULL);
}

// Two runs (or tuning workers) started together on an empty cache both generate the set;
// the one that publishes second must use the first one's identical copy, not fail.
TEST_F(SynthTest, ThreadsGeneratingTheSameSetAtOnceAllSucceed) {
  const SynthOptions options = small("set");
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < errors.size(); ++t)
    threads.emplace_back([&, t] { errors[t] = error_of([&] { generate_synthetic_dataset(options); }); });
  for (auto& thread : threads) thread.join();
  for (const auto& e : errors) EXPECT_EQ(e, "(no error)");
  EXPECT_EQ(listing(root_).front(), "set") << "no partial folder is left behind";
  EXPECT_TRUE(same_pixels(read_tiff(root_ / "set" / "Photos" / "Benign" / "b002.tif"),
                          draw_synthetic_image(1, options.width, options.height, synthetic_image_seed(5, 1, 2))));
}

// Issue #21 item 14: two processes that ask for the same set at once do not both draw it:
// one generates, the other waits for it and uses its copy. The test holds the set's lock
// itself until both processes are waiting, so they provably overlap however loaded the
// machine is.
TEST_F(SynthTest, AProcessWaitsForAnotherGeneratingTheSameSetAndUsesItsCopy) {
  const fs::path out = root_ / "shared";
  auto lock = std::make_unique<FileLock>(synthetic_lock_file(out));
  ASSERT_TRUE(lock->try_lock());
  // Each exit code is written beside its file and renamed into place: the test waits for
  // rcN to exist, and a shell's `>` would create it empty before echo writes the code.
  std::string script;
  for (int i = 1; i <= 2; ++i)
    script += fmt::format("('{}/bachlab' synth --out '{}' --per-class 2 --size 64x48 --seed 9 --workers 1 >/dev/null "
                          "2>'{}/err{}'; echo $? >'{}/rc{}.part'; mv '{}/rc{}.part' '{}/rc{}') & ",
                          BACHLAB_BINARY_DIR, out.string(), root_.string(), i, root_.string(), i, root_.string(), i,
                          root_.string(), i);
  ASSERT_EQ(std::system((script + "true").c_str()), 0);
  const std::string waiting = fmt::format("synth: process {} is generating '{}'; waiting for it (at most 3600 s)\n",
                                          ::getpid(), out.string());
  auto said = [&](int i) { return read_bytes(root_ / ("err" + std::to_string(i))); };
  for (int tries = 0; tries < 600 && (said(1).find(waiting) == std::string::npos ||
                                       said(2).find(waiting) == std::string::npos);
       ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(said(1).substr(0, waiting.size()), waiting) << "process 1 never waited, so this test proved nothing";
  EXPECT_EQ(said(2).substr(0, waiting.size()), waiting) << "process 2 never waited, so this test proved nothing";
  EXPECT_FALSE(fs::exists(out)) << "a process generated the set while another held its lock";
  lock.reset();
  for (int tries = 0; tries < 1200 && !(fs::exists(root_ / "rc1") && fs::exists(root_ / "rc2")); ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

  int generated = 0, used = 0;
  for (int i = 1; i <= 2; ++i) {
    SCOPED_TRACE("process " + std::to_string(i));
    EXPECT_EQ(read_bytes(root_ / ("rc" + std::to_string(i))), "0\n") << said(i);
    const std::string rest = said(i).substr(std::min(waiting.size(), said(i).size()));
    if (rest.rfind("synth: wrote 8 images (2 per class, 64x48, seed 9) to '" + out.string() + "' in ", 0) == 0)
      ++generated;
    else if (rest == "synth: another process generated '" + out.string() + "' meanwhile; using it\n")
      ++used;
    else
      ADD_FAILURE() << "unexpected output: " << said(i);
  }
  EXPECT_EQ(generated, 1) << "only one process draws the set";
  EXPECT_EQ(used, 1);
  EXPECT_TRUE(fs::exists(out / "synth.json"));
  EXPECT_EQ(listing(root_), (std::vector<std::string>{"err1", "err2", "rc1", "rc2", "shared", "shared/Photos",
                                                      "shared/Photos/Benign", "shared/Photos/Benign/b001.tif",
                                                      "shared/Photos/Benign/b002.tif", "shared/Photos/InSitu",
                                                      "shared/Photos/InSitu/is001.tif", "shared/Photos/InSitu/is002.tif",
                                                      "shared/Photos/Invasive", "shared/Photos/Invasive/iv001.tif",
                                                      "shared/Photos/Invasive/iv002.tif", "shared/Photos/Normal",
                                                      "shared/Photos/Normal/n001.tif", "shared/Photos/Normal/n002.tif",
                                                      "shared/Photos/microscopy_ground_truth.csv", "shared/synth.json"}))
      << "the lock file or a partial folder was left behind";
}

// The wait is bounded: a generator that never finishes stops the others with a message
// naming it. The lock is held by another open file of this process, which flock treats
// as another holder.
TEST_F(SynthTest, AWaitForAnotherGeneratorEndsWithAMessageNamingIt) {
  SynthOptions options = small("set");
  options.wait_s = 1;
  FileLock lock(synthetic_lock_file(options.out));
  ASSERT_TRUE(lock.try_lock());
  ::testing::internal::CaptureStderr();
  const std::string error = error_of([&] { generate_synthetic_dataset(options); });
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(said, fmt::format("synth: process {} is generating '{}'; waiting for it (at most 1 s)\n", ::getpid(),
                              options.out.string()));
  EXPECT_EQ(error, fmt::format("synth: process {0} has been generating '{1}' for longer than the 1 s this waits; let "
                               "it finish (or stop it with kill {0}), then run again",
                               ::getpid(), options.out.string()));
  EXPECT_FALSE(fs::exists(options.out));
}

TEST_F(SynthTest, ProcessesGeneratingTheSameSetOnAnEmptyCacheAtOnceAllSucceed) {
  // Large enough images that the processes overlap: each takes a good part of a second.
  const fs::path out = root_ / "shared";
  std::string script = "for i in 1 2 3 4; do (";
  script += fmt::format("'{}/bachlab' synth --out '{}' --per-class 2 --size 640x480 --seed 9 --workers 1", BACHLAB_BINARY_DIR,
                        out.string());
  script += fmt::format(" >/dev/null 2>'{0}/err'$i; echo $? >'{0}/rc'$i) & done; wait", root_.string());
  ASSERT_EQ(std::system(script.c_str()), 0);
  for (int i = 1; i <= 4; ++i) {
    SCOPED_TRACE("process " + std::to_string(i));
    EXPECT_EQ(read_bytes(root_ / ("rc" + std::to_string(i))), "0\n") << read_bytes(root_ / ("err" + std::to_string(i)));
  }
  EXPECT_TRUE(fs::exists(out / "synth.json"));
  for (const auto& entry : fs::directory_iterator(root_))
    EXPECT_EQ(entry.path().filename().string().find(".shared.synth-partial"), std::string::npos) << entry.path();
}
