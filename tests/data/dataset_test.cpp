// Discovery: BACH and folder layouts, and one exact message per structural problem.
#include "host/data/dataset.h"
#include "tests/data/fixtures.h"

#include <bachlab/sdk/error.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

DataConfig bach_config(const fs::path& root) {
  DataConfig config;
  config.root = root;
  config.cache_dir = root / "cache";
  return config;
}

TEST(DiscoverTest, BachLayoutListsEveryPhotoWithItsLabelInClassOrder) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 3);
  Dataset dataset = discover_dataset(bach_config(dir.path()));
  EXPECT_EQ(dataset.classes, default_bach_classes());
  ASSERT_EQ(dataset.files.size(), 12u);
  EXPECT_EQ(dataset.labels, (std::vector<int64_t>{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3}));
  EXPECT_EQ(dataset.files[0], dir / "Photos" / "Normal" / "n001.tif");
  EXPECT_EQ(dataset.files[11], dir / "Photos" / "Invasive" / "iv003.tif");
  EXPECT_EQ(dataset.root, dir / "Photos");
  EXPECT_TRUE(dataset.skipped.empty());
}

TEST(DiscoverTest, RootMayBeThePhotosFolderItself) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 2);
  Dataset dataset = discover_dataset(bach_config(dir / "Photos"));
  EXPECT_EQ(dataset.files.size(), 8u);
}

TEST(DiscoverTest, FoldersLayoutTakesLabelsFromFolderNamesInConfigOrder) {
  TempDir dir;
  for (const char* name : {"cats", "dogs"}) {
    fs::create_directories(dir / name);
    test::write_rgb_tiff(dir / name / "a.tif", test::class_image(0, 0, 8, 8));
  }
  cv::Mat image = test::class_image(1, 1, 8, 8);
  test::write_rgb_tiff(dir / "dogs" / "b.tif", image);
  test::write_bytes(dir / "dogs" / "notes.txt", "hello");
  test::write_bytes(dir / "dogs" / ".DS_Store", "junk");
  DataConfig config = bach_config(dir.path());
  config.layout = PhotoLayout::folders;
  config.classes = {"dogs", "cats"};
  Dataset dataset = discover_dataset(config);
  EXPECT_EQ(dataset.labels, (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(dataset.files[2], dir / "cats" / "a.tif");
  ASSERT_EQ(dataset.skipped.size(), 1u);
  EXPECT_EQ(dataset.skipped[0], (dir / "dogs" / "notes.txt").string() + ": not an image (extension \".txt\"); ignored");
}

TEST(DiscoverTest, EmptyClassListMeansEverySubfolderSorted) {
  TempDir dir;
  for (const char* name : {"b", "a", "c"}) {
    fs::create_directories(dir / name);
    test::write_rgb_tiff(dir / name / "x.tif", test::class_image(0, 0, 8, 8));
  }
  DataConfig config = bach_config(dir.path());
  config.layout = PhotoLayout::folders;
  config.classes.clear();
  fs::remove_all(dir / "cache");
  Dataset dataset = discover_dataset(config);
  EXPECT_EQ(dataset.classes, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(DiscoverErrorTest, MissingRoot) {
  TempDir dir;
  DataConfig config = bach_config(dir / "nowhere");
  config.origin = "exp.toml";
  EXPECT_EQ(error_of([&] { discover_dataset(config); }),
            (dir / "nowhere").string() + ": dataset folder not found ([data] root set at exp.toml); set [data] root to "
                                         "the BACH folder (the one holding Photos/) or to a folder with one subfolder "
                                         "per class");
  // Where the root itself was set, when known: the command line rather than the file.
  config.root_from = "command line";
  EXPECT_NE(error_of([&] { discover_dataset(config); }).find("not found ([data] root set at command line)"),
            std::string::npos);
}

TEST(DiscoverErrorTest, RootIsAFile) {
  TempDir dir;
  test::write_bytes(dir / "file", "x");
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir / "file")); }),
            (dir / "file").string() +
                ": expected a dataset folder but found a file; set [data] root to the folder holding the photos");
}

TEST(DiscoverErrorTest, MissingClassFolder) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 1);
  fs::remove_all(dir / "Photos" / "InSitu");
  test::write_bytes(dir / "Photos" / "microscopy_ground_truth.csv", "n001.tif,Normal\nb001.tif,Benign\niv001.tif,Invasive\n");
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir.path())); }),
            (dir / "Photos" / "InSitu").string() +
                ": class folder not found; create it with the photos of class \"InSitu\", or remove \"InSitu\" from "
                "[data] classes");
}

TEST(DiscoverErrorTest, EmptyClassFolder) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 1);
  fs::remove(dir / "Photos" / "Benign" / "b001.tif");
  test::write_bytes(dir / "Photos" / "microscopy_ground_truth.csv", "n001.tif,Normal\nis001.tif,InSitu\niv001.tif,Invasive\n");
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir.path())); }),
            (dir / "Photos" / "Benign").string() +
                ": class folder holds no photos (.tif, .tiff, .png, .jpg, .jpeg); add the photos of class \"Benign\" "
                "or remove \"Benign\" from [data] classes");
}

TEST(DiscoverErrorTest, UnreadableFolder) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every folder whatever its permissions";
  TempDir dir;
  test::make_bach_dataset(dir.path(), 1);
  fs::permissions(dir / "Photos" / "Benign", fs::perms::none);
  const std::string message = error_of([&] { discover_dataset(bach_config(dir.path())); });
  fs::permissions(dir / "Photos" / "Benign", fs::perms::owner_all);
  EXPECT_THAT(message, ::testing::HasSubstr((dir / "Photos" / "Benign").string() +
                                            ": cannot list the folder (Permission denied); check its permissions"));
}

TEST(DiscoverErrorTest, MissingGroundTruth) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  fs::remove(csv);
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir.path())); }),
            csv.string() + ": not found; the BACH layout needs it (rows <file>,<Class>); set [data] layout = "
                           "\"folders\" to take labels from the folder names instead");
}

TEST(DiscoverErrorTest, UnknownLabelSuggestsTheClosestClass) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  test::write_bytes(csv, "n001.tif,Normal\nb001.tif,Begnin\nis001.tif,InSitu\niv001.tif,Invasive\n");
  const std::string message = error_of([&] { discover_dataset(bach_config(dir.path())); });
  EXPECT_EQ(message, "2 problems in dataset " + (dir / "Photos").string() + ":\n- " + csv.string() +
                         ":2: unknown label \"Begnin\" for b001.tif; expected one of Normal, Benign, InSitu, Invasive "
                         "(did you mean \"Benign\"?)\n- " +
                         (dir / "Photos" / "Benign" / "b001.tif").string() + ": not listed in " + csv.string() +
                         "; add the row \"b001.tif,Benign\" or remove the file");
}

TEST(DiscoverErrorTest, RowNamingAMissingFile) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  test::write_bytes(csv, test::read_bytes(csv) + "b002.tif,Benign\n");
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir.path())); }),
            csv.string() + ":5: names b002.tif, which is not in " + (dir / "Photos" / "Benign").string() +
                "/; restore the file or delete the row");
}

TEST(DiscoverErrorTest, FileMissingFromTheCsv) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  test::write_rgb_tiff(dir / "Photos" / "Normal" / "n002.tif", test::class_image(0, 2, 8, 8));
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir.path())); }),
            (dir / "Photos" / "Normal" / "n002.tif").string() + ": not listed in " + csv.string() +
                "; add the row \"n002.tif,Normal\" or remove the file");
}

TEST(DiscoverErrorTest, RowWhoseFileIsInAnotherClassFolder) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  test::write_bytes(csv, "n001.tif,Benign\nb001.tif,Benign\nis001.tif,InSitu\niv001.tif,Invasive\n");
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir.path())); }),
            csv.string() + ":1: labels n001.tif as Benign but the file is in " + (dir / "Photos" / "Normal").string() +
                "/; fix the row or move the file");
}

TEST(DiscoverErrorTest, DuplicateAndMalformedRows) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  test::write_bytes(csv, "\xEF\xBB\xBFn001.tif,Normal\r\nb001.tif,Benign\r\nb001.tif,Benign\r\njust-a-name\r\n"
                         "is001.tif,InSitu\r\niv001.tif,Invasive\r\n\r\n");
  EXPECT_EQ(error_of([&] { discover_dataset(bach_config(dir.path())); }),
            "2 problems in dataset " + (dir / "Photos").string() + ":\n- " + csv.string() +
                ":3: b001.tif is listed again (first at line 2); delete one of the rows\n- " + csv.string() +
                ":4: expected <file>,<Class> or <file>,<Class>,<group> (was \"just-a-name\")");
}

// A third column names each photo's group (patient or slide), for [data.split] group = "csv".
TEST(DiscoverTest, AThirdColumnGivesEachPhotoItsGroup) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 2);
  test::write_bytes(csv, "file,class,patient\nn001.tif,Normal,p1\nn002.tif,Normal, p2 \nb001.tif,Benign,p1\n"
                         "b002.tif,Benign,p3\nis001.tif,InSitu,p4\nis002.tif,InSitu,p4\niv001.tif,Invasive,p5\n"
                         "iv002.tif,Invasive\n");
  const Dataset dataset = discover_dataset(bach_config(dir.path()));
  EXPECT_EQ(dataset.groups, (std::vector<std::string>{"p1", "p2", "p1", "p3", "p4", "p4", "p5", ""}));
  EXPECT_EQ(select(dataset, {1, 4}).groups, (std::vector<std::string>{"p2", "p4"}));
  test::write_bytes(csv, "n001.tif,Normal,p1,extra\nn002.tif,Normal,\n");
  const std::string message = error_of([&] { discover_dataset(bach_config(dir.path())); });
  EXPECT_THAT(message, ::testing::HasSubstr(csv.string() + ":1: expected <file>,<Class> or <file>,<Class>,<group> "
                                                           "(was \"n001.tif,Normal,p1,extra\")"));
  EXPECT_THAT(message, ::testing::HasSubstr(csv.string() + ":2: expected"));
  // Without a third column there are no groups at all.
  test::make_bach_dataset(dir.path(), 2);
  EXPECT_TRUE(discover_dataset(bach_config(dir.path())).groups.empty());
}

TEST(DiscoverTest, HeaderRowIsAccepted) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  test::write_bytes(csv, "file,label\n" + test::read_bytes(csv));
  EXPECT_EQ(discover_dataset(bach_config(dir.path())).files.size(), 4u);
}

TEST(DiscoverErrorTest, BadImagesStopTheRunOrAreSkippedAndListed) {
  TempDir dir;
  test::make_bach_dataset(dir.path(), 2);
  const fs::path empty = dir / "Photos" / "Benign" / "b002.tif";
  const fs::path png = dir / "Photos" / "InSitu" / "is001.tif";
  test::write_bytes(empty, "");
  test::write_bytes(png, "\x89PNG\r\n\x1a\nrest");
  DataConfig config = bach_config(dir.path());
  const std::string empty_message =
      empty.string() + ": the file is empty (0 bytes); copy it again from the original dataset or remove it";
  const std::string png_message = png.string() +
                                  ": the extension says TIFF but the content is PNG; rename the file to match its "
                                  "content or convert it";
  EXPECT_EQ(error_of([&] { discover_dataset(config); }),
            "2 problems in dataset " + (dir / "Photos").string() + ":\n- " + empty_message + "\n- " + png_message);

  config.on_bad_image = BadImages::skip;
  Dataset dataset = discover_dataset(config);
  EXPECT_EQ(dataset.files.size(), 6u);
  EXPECT_EQ(dataset.skipped, (std::vector<std::string>{empty_message, png_message}));
  EXPECT_EQ(dataset.labels, (std::vector<int64_t>{0, 0, 1, 2, 3, 3}));
}

TEST(DiscoverErrorTest, ManyProblemsAreCappedWithACount) {
  TempDir dir;
  const fs::path csv = test::make_bach_dataset(dir.path(), 1);
  std::string rows = test::read_bytes(csv);
  for (int i = 0; i < 35; ++i) rows += "ghost" + std::to_string(i) + ".tif,Normal\n";
  test::write_bytes(csv, rows);
  const std::string message = error_of([&] { discover_dataset(bach_config(dir.path())); });
  EXPECT_THAT(message, ::testing::StartsWith("35 problems in dataset "));
  EXPECT_THAT(message, ::testing::EndsWith("\n- ... and 5 more"));
}

TEST(DiscoverErrorTest, SyntheticSourceKeepsTheBachClasses) {
  DataConfig config;
  config.source = DataSource::synthetic;
  config.classes = {"a", "b"};
  config.origin = "exp.toml";
  EXPECT_EQ(error_of([&] { discover_dataset(config); }),
            "exp.toml: [data] classes must be the four BACH classes when source = \"synthetic\" (was a, b); remove "
            "classes or use source = \"folder\"");
}

TEST(DiscoverTest, SelectKeepsClassesRootAndSkipped) {
  Dataset dataset;
  dataset.classes = {"x", "y"};
  dataset.files = {"a", "b", "c"};
  dataset.labels = {0, 1, 1};
  dataset.skipped = {"d: bad"};
  dataset.root = "/r";
  Dataset subset = select(dataset, {2, 0});
  EXPECT_EQ(subset.files, (std::vector<fs::path>{"c", "a"}));
  EXPECT_EQ(subset.labels, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(subset.skipped, dataset.skipped);
  EXPECT_EQ(error_of([&] { select(dataset, {3}); }), "select: index 3 is outside the dataset's 3 files");
}

}  // namespace
}  // namespace bachlab::host
