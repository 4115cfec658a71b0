// [data] settings: defaults, every key read, every problem recorded with file and line.
#include "host/data/data_config.h"

#include <bachlab/sdk/param_table.h>
#include <gtest/gtest.h>

namespace bachlab::host {
namespace {

using sdk::Origin;
using sdk::ParamTable;
using sdk::Scalar;

struct Tables {
  ParamTable data{"[data]", Origin{"exp/config.toml", 1}};
  ParamTable synthetic{"[data.synthetic]", Origin{"exp/config.toml", 20}};
  ParamTable split{"[data.split]", Origin{"exp/config.toml", 30}};

  DataConfig read(uint64_t seed = 0) { return read_data_config(data, synthetic, split, seed); }
  std::vector<std::string> problems() const {
    std::vector<std::string> all;
    for (const ParamTable* p : {&data, &synthetic, &split})
      for (const auto& problem : p->problems()) all.push_back(problem);
    return all;
  }
};

TEST(DataConfigTest, Defaults) {
  Tables tables;
  tables.data.set("source", std::string("synthetic"), {"exp/config.toml", 2});
  DataConfig config = tables.read(1234);
  EXPECT_TRUE(tables.problems().empty());
  EXPECT_EQ(config.source, DataSource::synthetic);
  EXPECT_EQ(config.layout, PhotoLayout::bach);
  EXPECT_EQ(config.classes, (std::vector<std::string>{"Normal", "Benign", "InSitu", "Invasive"}));
  EXPECT_EQ(config.image_size, 224);
  EXPECT_EQ(config.normalize, InputScaling::unit);
  EXPECT_EQ(config.on_bad_image, BadImages::error);
  EXPECT_EQ(config.cache_dir, default_cache_dir());
  EXPECT_EQ(config.workers, 0);
  EXPECT_EQ(config.synthetic.per_class, 20);
  EXPECT_EQ(config.synthetic.width, 256);
  EXPECT_EQ(config.synthetic.height, 192);
  EXPECT_EQ(config.split.train, 0.7);
  EXPECT_EQ(config.split.val, 0.15);
  EXPECT_EQ(config.split.test, 0.15);
  EXPECT_EQ(config.split.seed, 1234u);
  EXPECT_EQ(config.split.folds, 0);
}

TEST(DataConfigTest, EveryKeyIsReadAndPathsAreRelativeToTheConfig) {
  Tables tables;
  Origin at{"exp/config.toml", 3};
  tables.data.set("root", std::string("../datasets/bach"), at);
  tables.data.set("layout", std::string("folders"), at);
  tables.data.set("classes", std::vector<Scalar>{std::string("a"), std::string("b")}, at);
  tables.data.set("image_size", int64_t(64), at);
  tables.data.set("normalize", std::string("standardize"), at);
  tables.data.set("on_bad_image", std::string("skip"), at);
  tables.data.set("cache_dir", std::string("cache"), at);
  tables.data.set("workers", int64_t(3), at);
  tables.synthetic.set("per_class", int64_t(5), at);
  tables.synthetic.set("width", int64_t(64), at);
  tables.synthetic.set("height", int64_t(48), at);
  tables.synthetic.set("seed", int64_t(9), at);
  tables.split.set("train", 0.5, at);
  tables.split.set("val", 0.25, at);
  tables.split.set("test", 0.25, at);
  tables.split.set("seed", int64_t(77), at);
  DataConfig config = tables.read(1);
  EXPECT_EQ(tables.problems(), std::vector<std::string>{});
  // Relative to the config's folder, then absolute: the paths a run records mean the same
  // from any working folder.
  EXPECT_EQ(config.root, std::filesystem::absolute("datasets/bach"));
  EXPECT_EQ(config.layout, PhotoLayout::folders);
  EXPECT_EQ(config.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(config.image_size, 64);
  EXPECT_EQ(config.normalize, InputScaling::standardize);
  EXPECT_EQ(config.on_bad_image, BadImages::skip);
  EXPECT_EQ(config.cache_dir, "exp/cache");
  EXPECT_EQ(config.workers, 3);
  EXPECT_EQ(config.synthetic.per_class, 5);
  EXPECT_EQ(config.synthetic.seed, 9u);
  EXPECT_EQ(config.split.train, 0.5);
  EXPECT_EQ(config.split.seed, 77u);
}

TEST(DataConfigTest, EveryProblemIsRecordedWithFileAndLine) {
  Tables tables;
  tables.data.set("layout", std::string("bachh"), {"exp/config.toml", 4});
  tables.data.set("classes", std::vector<Scalar>{std::string("a"), int64_t(2)}, {"exp/config.toml", 5});
  tables.data.set("image_size", int64_t(2), {"exp/config.toml", 6});
  tables.data.set("imagesize", int64_t(2), {"exp/config.toml", 7});
  tables.split.set("train", 0.7, {"exp/config.toml", 31});
  tables.split.set("val", 0.2, {"exp/config.toml", 32});
  tables.split.set("test", 0.15, {"exp/config.toml", 33});
  tables.read();
  EXPECT_EQ(tables.problems(),
            (std::vector<std::string>{
                "exp/config.toml:1: [data] root is required when source = \"folder\"; set it to the BACH folder (the "
                "one holding Photos/) or to a folder with one subfolder per class, or use source = \"synthetic\"",
                "exp/config.toml:4: [data] layout must be one of \"bach\", \"folders\" (was \"bachh\"); did you mean "
                "\"bach\"?",
                "exp/config.toml:5: [data] classes must be a list of strings (was list [\"a\", 2])",
                "exp/config.toml:6: [data] image_size must be in 8..4096 (was 2)",
                "exp/config.toml:7: [data] unknown key \"imagesize\"; did you mean \"image_size\"?",
                "exp/config.toml:31: [data.split] train + val + test must sum to 1 (was 0.7 + 0.2 + 0.15 = 1.05); "
                "adjust the fractions",
            }));
}

TEST(DataConfigTest, ClassListRules) {
  Tables tables;
  tables.data.set("source", std::string("synthetic"));
  tables.data.set("classes", std::vector<Scalar>{std::string("a"), std::string("a")}, {"c.toml", 2});
  DataConfig config = tables.read();
  EXPECT_EQ(config.classes, default_bach_classes());
  EXPECT_EQ(tables.problems(), (std::vector<std::string>{"c.toml:2: [data] classes must not name a class twice "
                                                         "(\"a\" appears more than once in [\"a\", \"a\"])"}));
  Tables one;
  one.data.set("source", std::string("synthetic"));
  one.data.set("classes", std::vector<Scalar>{std::string("only")}, {"c.toml", 2});
  one.read();
  EXPECT_EQ(one.problems(), (std::vector<std::string>{"c.toml:2: [data] classes must name at least 2 classes (was "
                                                      "[\"only\"])"}));
}

TEST(DataConfigTest, FoldsRules) {
  Tables tables;
  tables.data.set("source", std::string("synthetic"));
  tables.split.set("folds", int64_t(5), {"c.toml", 40});
  tables.split.set("val", 0.2, {"c.toml", 41});
  DataConfig config = tables.read();
  EXPECT_EQ(config.split.folds, 5);
  EXPECT_EQ(tables.problems(),
            (std::vector<std::string>{"c.toml:41: [data.split] val does not apply with folds = 5 (each fold is held "
                                      "out once as validation, and there is no test part); remove train/val/test (on "
                                      "the command line: ~data.split.train ~data.split.val ~data.split.test) or set "
                                      "folds = 0"}));
  Tables one;
  one.data.set("source", std::string("synthetic"));
  one.split.set("folds", int64_t(1), {"c.toml", 40});
  one.read();
  EXPECT_EQ(one.problems(), (std::vector<std::string>{
                                "c.toml:40: [data.split] folds must be 0 (no k-fold) or at least 2 (was 1)"}));
}

TEST(DataConfigTest, GroupedFoldsRules) {
  Tables tables;
  tables.data.set("source", std::string("synthetic"));
  tables.split.set("folds", int64_t(5), {"c.toml", 40});
  tables.split.set("group", std::string("block"), {"c.toml", 41});
  EXPECT_EQ(tables.read().split.group, FoldGrouping::block);
  EXPECT_TRUE(tables.problems().empty());

  Tables without_folds;
  without_folds.data.set("source", std::string("synthetic"));
  without_folds.split.set("group", std::string("block"), {"c.toml", 41});
  without_folds.read();
  EXPECT_EQ(without_folds.problems(),
            (std::vector<std::string>{"c.toml:41: [data.split] group only applies to k-fold cross-validation (folds "
                                      "is 0); set folds = 5, say, or remove group"}));
  Tables unknown;
  unknown.data.set("source", std::string("synthetic"));
  unknown.split.set("folds", int64_t(5), {"c.toml", 40});
  unknown.split.set("group", std::string("slide"), {"c.toml", 41});
  unknown.read();
  ASSERT_EQ(unknown.problems().size(), 1u);
  EXPECT_NE(unknown.problems()[0].find("c.toml:41: [data.split] group"), std::string::npos) << unknown.problems()[0];

  // The groups of "csv" come from the BACH ground-truth CSV, which only that layout has.
  Tables csv;
  csv.data.set("source", std::string("synthetic"));
  csv.data.set("layout", std::string("folders"), {"c.toml", 3});
  csv.split.set("folds", int64_t(5), {"c.toml", 40});
  csv.split.set("group", std::string("csv"), {"c.toml", 41});
  csv.read();
  EXPECT_EQ(csv.problems(),
            (std::vector<std::string>{"c.toml:41: [data.split] group = \"csv\" reads each photo's group from the third "
                                      "column of the BACH ground-truth CSV (Photos/microscopy_ground_truth.csv), but "
                                      "[data] layout is \"folders\"; use layout = \"bach\" or group = \"block\""}));
}

TEST(DataConfigTest, ReadsThroughTheConfigLoader) {
  Config config = Config::parse(
      "[data]\nroot = \"photos\"\nimage_size = 32\n[data.split]\nseed = 5\n[data.synthetic]\nper_class = 3\n",
      "runs/exp.toml");
  DataConfig data = read_data_config(config, 11);
  EXPECT_EQ(data.root, std::filesystem::absolute("runs/photos"));
  EXPECT_EQ(data.image_size, 32);
  EXPECT_EQ(data.split.seed, 5u);
  EXPECT_EQ(data.synthetic.per_class, 3);
  EXPECT_EQ(data.origin, "runs/exp.toml");
  EXPECT_EQ(config.table("data").problems(), std::vector<std::string>{});
}

TEST(DataConfigTest, ScaleStainAndVariantKeys) {
  Tables tables;
  tables.data.set("source", std::string("synthetic"), {"exp/config.toml", 2});
  DataConfig defaults = tables.read();
  EXPECT_EQ(defaults.scale, 0.0);
  EXPECT_EQ(defaults.stain_normalize, StainMethod::none);
  EXPECT_TRUE(defaults.stain_reference.empty());
  EXPECT_EQ(defaults.synthetic.variant, "default");
  EXPECT_FALSE(stain_target_from_training(defaults));
  EXPECT_EQ(prepared_size_text(defaults), "224x224");

  Origin at{"exp/config.toml", 4};
  tables.data.set("scale", 0.5, at);
  tables.data.set("stain_normalize", std::string("macenko"), at);
  tables.synthetic.set("variant", std::string("nuclear"), at);
  DataConfig config = tables.read();
  EXPECT_TRUE(tables.problems().empty());
  EXPECT_EQ(config.scale, 0.5);
  EXPECT_EQ(prepared_size_text(config), "scale 0.5");
  EXPECT_EQ(config.stain_normalize, StainMethod::macenko);
  EXPECT_EQ(config.synthetic.variant, "nuclear");
  EXPECT_TRUE(stain_target_from_training(config));
  tables.data.set("stain_reference", std::string("ref/photo.tif"), at);
  config = tables.read();
  EXPECT_EQ(config.stain_reference, "exp/ref/photo.tif");
  EXPECT_FALSE(stain_target_from_training(config));
}

TEST(DataConfigTest, BadScaleStainAndVariantAreReported) {
  Tables tables;
  tables.data.set("source", std::string("synthetic"), {"exp/config.toml", 2});
  tables.data.set("scale", 1.5, {"exp/config.toml", 4});
  tables.data.set("stain_normalize", std::string("macenco"), {"exp/config.toml", 5});
  tables.data.set("stain_reference", std::string("ref.tif"), {"exp/config.toml", 6});
  tables.synthetic.set("variant", std::string("nuclei"), {"exp/config.toml", 21});
  tables.read();
  EXPECT_EQ(tables.problems(),
            (std::vector<std::string>{
                "exp/config.toml:4: [data] scale must be in 0.0..1.0 (was 1.5)",
                "exp/config.toml:5: [data] stain_normalize must be one of \"none\", \"macenko\", \"reinhard\" (was "
                "\"macenco\"); did you mean \"macenko\"?",
                "exp/config.toml:6: [data] stain_reference is set but stain_normalize = \"none\"; set stain_normalize "
                "= \"macenko\" or \"reinhard\", or remove stain_reference",
                "exp/config.toml:21: [data.synthetic] variant must be one of \"default\", \"nuclear\" (was "
                "\"nuclei\"); did you mean \"nuclear\"?"}));
  Tables tiny;
  tiny.data.set("source", std::string("synthetic"), {"exp/config.toml", 2});
  tiny.data.set("scale", 0.01, {"exp/config.toml", 4});
  tiny.read();
  EXPECT_EQ(tiny.problems(), (std::vector<std::string>{"exp/config.toml:4: [data] scale must be 0 (off) or at least "
                                                       "1/64 (was 0.01); a photo shrunk further is a few pixels"}));
}

}  // namespace
}  // namespace bachlab::host
