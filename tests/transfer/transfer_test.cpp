// The resnet50, vgg16 and torchscript model plugins: torchvision's own logits from
// torchvision's own weights, every rejected weights file and setting with its exact
// message, and what frozen and finetune modes train and leave alone.
#include "transfer_fixtures.h"

#include "host/train/trainer.h"

#include <gtest/gtest.h>

namespace {

using namespace transfer_test;

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(20180101);
    torch::set_num_threads(2);
  }
};

double max_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// --- exactness against torchvision ------------------------------------------------------

TEST_F(TransferTest, Resnet50GivesTorchvisionLogitsAndFeatures) {
  REQUIRE_TORCHVISION();
  auto check = read_map(fixture("resnet50_seed7_check.pt"));
  auto network = create("resnet50", 224, 1000, {{"weights", fixture("resnet50_seed7.pt")}, {"head", "imagenet"}});
  network->eval();
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_difference(network->forward(check["input"]), check["logits"]), 1e-4);
  EXPECT_LT(max_difference(network->frozen_features()->extract_features(check["input"]), check["features"]), 1e-4);
}

TEST_F(TransferTest, Vgg16GivesTorchvisionLogitsAndFeatures) {
  REQUIRE_TORCHVISION();
  auto check = read_map(fixture("vgg16_seed7_check.pt"));
  auto network = create("vgg16", 224, 1000, {{"weights", fixture("vgg16_seed7.pt")}, {"head", "imagenet"}});
  network->eval();
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_difference(network->forward(check["input"]), check["logits"]), 1e-4);
  EXPECT_LT(max_difference(network->frozen_features()->extract_features(check["input"]), check["features"]), 1e-4);
}

TEST_F(TransferTest, TorchScriptModuleGivesTorchvisionFeatures) {
  REQUIRE_TORCHVISION();
  auto check = read_map(fixture("resnet50_seed7_check.pt"));
  auto network = create("torchscript", 224, 4, {{"module", fixture("resnet50_seed7.ts")}, {"hidden_units", int64_t{32}}});
  ASSERT_NE(network->frozen_features(), nullptr);
  network->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor features = network->frozen_features()->extract_features(check["input"]);
  EXPECT_LT(max_difference(features, check["features"]), 1e-4);
  EXPECT_EQ(network->forward(check["input"]).sizes(), (std::vector<int64_t>{2, 4}));
  // Only the head is the network's: the module is never trained.
  EXPECT_EQ(network->parameter_groups().size(), 1u);
  EXPECT_EQ(network->parameter_groups()[0].name, "head");
  EXPECT_EQ(network->parameters().size(), 4u);
}

// --- rejected weights ---------------------------------------------------------------------

TEST_F(TransferTest, WeightsThatDoNotFitAreListedByNameAndShape) {
  REQUIRE_TORCHVISION();
  TempDir temp;
  auto entries = read_dict(fixture("resnet50_seed7.pt"));
  std::vector<std::pair<std::string, torch::Tensor>> edited;
  for (auto& [name, tensor] : entries) {
    if (name == "layer4.2.bn3.running_var") continue;
    if (name == "conv1.weight") tensor = torch::zeros({64, 1, 7, 7});
    edited.emplace_back(name, tensor);
  }
  edited.emplace_back("extra.weight", torch::zeros({3}));
  const std::string file = temp.file("edited.pt");
  write_dict(file, edited);
  EXPECT_EQ(error_of("resnet50", 32, 4, {{"weights", file}}),
            "configs/transfer.toml:2: [model] weights \"" + file +
                "\" does not fit torchvision's resnet50 (1 missing, 1 unexpected, 1 with the wrong shape)\n"
                "  missing:     layer4.2.bn3.running_var [2048]\n"
                "  unexpected:  extra.weight [3]\n"
                "  wrong shape: conv1.weight: expected [64, 3, 7, 7], found [64, 1, 7, 7]\n"
                "Export the file with scripts/export_torchvision.py resnet50 (it writes torchvision's names and "
                "shapes), or point weights at a resnet50 file");
}

TEST_F(TransferTest, WeightsOfAnotherModelAreCutAfterTenLinesPerKind) {
  REQUIRE_TORCHVISION();
  const std::string message = error_of("resnet50", 32, 4, {{"weights", fixture("vgg16_seed7_notop.pt")}});
  EXPECT_EQ(message.rfind("configs/transfer.toml:2: [model] weights \"" + fixture("vgg16_seed7_notop.pt") +
                              "\" does not fit torchvision's resnet50 (318 missing, 26 unexpected)\n"
                              "  missing:     conv1.weight [64, 3, 7, 7]\n",
                          0),
            0u)
      << message;
  EXPECT_NE(message.find("\n  ... and 308 more missing\n  unexpected:  features.0.weight [64, 3, 3, 3]\n"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("\n  ... and 16 more unexpected\nExport the file"), std::string::npos) << message;
}

TEST_F(TransferTest, NotopWeightsServeTheStudyHeadButNotImagenetHead) {
  REQUIRE_TORCHVISION();
  TempDir temp;
  std::vector<std::pair<std::string, torch::Tensor>> notop;
  for (auto& [name, tensor] : read_dict(fixture("resnet50_seed7.pt")))
    if (name.rfind("fc.", 0) != 0) notop.emplace_back(name, tensor);
  const std::string file = temp.file("notop.pt");
  write_dict(file, notop);
  EXPECT_NO_THROW(create("resnet50", 32, 4, {{"weights", file}}));
  EXPECT_EQ(error_of("resnet50", 32, 1000, {{"weights", file}, {"head", "imagenet"}}),
            "configs/transfer.toml:2: [model] weights \"" + file +
                "\" does not fit torchvision's resnet50 (2 missing)\n"
                "  missing:     fc.weight [1000, 2048]\n"
                "  missing:     fc.bias [1000]\n"
                "Export the file with scripts/export_torchvision.py resnet50 (it writes torchvision's names and "
                "shapes), or point weights at a resnet50 file");
}

TEST_F(TransferTest, PretrainedWithoutWeightsSaysHowToGetThem) {
  EXPECT_EQ(error_of("vgg16", 32, 4, {}),
            "configs/transfer.toml:1: [model] weights is required with pretrained = true (the default): export "
            "ImageNet weights on a machine with internet with \"/usr/bin/python3 scripts/export_torchvision.py vgg16 "
            "--pretrained --notop -o vgg16_imagenet_notop.pt\", copy the file next to this config and set weights = "
            "\"vgg16_imagenet_notop.pt\"; or set pretrained = false and mode = \"finetune\" to train from scratch");
}

TEST_F(TransferTest, MissingWeightsFileSaysHowToGetOne) {
  EXPECT_EQ(error_of("resnet50", 32, 4, {{"weights", "/nonexistent/resnet50.pt"}}),
            "configs/transfer.toml:2: [model] weights \"/nonexistent/resnet50.pt\" cannot be opened (no such file); "
            "export ImageNet weights on a machine with internet with \"/usr/bin/python3 "
            "scripts/export_torchvision.py resnet50 --pretrained -o /nonexistent/resnet50.pt\" and copy the file "
            "there; or set pretrained = false and mode = \"finetune\" to train from scratch");
  // The quick configs' seeded random weights need no internet, and VGG16's are top-less.
  EXPECT_EQ(error_of("vgg16", 32, 4, {{"weights", "/nonexistent/vgg16_seed7_notop.pt"}}),
            "configs/transfer.toml:2: [model] weights \"/nonexistent/vgg16_seed7_notop.pt\" cannot be opened (no such "
            "file); make these seeded random weights (no download) from the checkout with \"/usr/bin/python3 "
            "scripts/export_torchvision.py vgg16 --random-seed 7 --notop -o /nonexistent/vgg16_seed7_notop.pt\", as "
            "`scripts/dev.sh setup` does for the quick configs; or set pretrained = false and mode = \"finetune\" to "
            "train from scratch");
}

TEST_F(TransferTest, UnreadableAndWrongKindFilesSayHowToWriteOne) {
  TempDir temp;
  const std::string junk = temp.file("junk.pt");
  std::ofstream(junk) << "not a zip archive";
  const std::string message = error_of("resnet50", 32, 4, {{"weights", junk}});
  const std::string rewrite = "; write it with scripts/export_torchvision.py, which saves torchvision's state_dict "
                              "as a plain dict {name: tensor} with torch.save";
  // The middle is LibTorch's own reason, which differs between versions.
  EXPECT_EQ(message.rfind("configs/transfer.toml:2: [model] weights \"" + junk +
                              "\" is not a file LibTorch can read (",
                          0),
            0u)
      << message;
  EXPECT_EQ(message.substr(message.size() - rewrite.size()), rewrite) << message;

  const std::string list = temp.file("list.pt");
  std::vector<char> bytes = torch::pickle_save(c10::IValue(std::vector<int64_t>{1, 2}));
  std::ofstream(list, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_EQ(error_of("resnet50", 32, 4, {{"weights", list}}),
            "configs/transfer.toml:2: [model] weights \"" + list +
                "\" holds a list, expected a dict {name: tensor} (an OrderedDict from model.state_dict() reads as "
                "None here)" + rewrite);
}

// --- rejected settings --------------------------------------------------------------------

TEST_F(TransferTest, SettingsThatClashAreAllReportedAtOnce) {
  EXPECT_EQ(error_of("resnet50", 32, 4,
                     {{"pretrained", false}, {"weights", "x.pt"}, {"trainable_blocks", int64_t{2}}}),
            "configs/transfer.toml:3: [model] weights is set but pretrained = false never reads it; remove weights, "
            "or set pretrained = true\n"
            "configs/transfer.toml:1: [model] mode \"frozen\" needs pretrained weights (a frozen random backbone "
            "learns nothing), but pretrained = false; set mode = \"finetune\" to train from scratch, or pretrained "
            "= true with a weights file\n"
            "configs/transfer.toml:4: [model] trainable_blocks only applies to mode = \"finetune\" (mode is "
            "\"frozen\"); remove it or set mode = \"finetune\"");
  EXPECT_EQ(error_of("vgg16", 32, 4, {{"pretrained", false}, {"mode", "finetune"}, {"head", "imagenet"}, {"l2", 0.1}}),
            "configs/transfer.toml:5: [model] l2 only applies to head = \"study\" (head is \"imagenet\", "
            "torchvision's own classifier); remove it or set head = \"study\"\n"
            "configs/transfer.toml:4: [model] head \"imagenet\" keeps torchvision's 1000-class ImageNet classifier, "
            "but the data has 4 classes; use head = \"study\"");
  EXPECT_EQ(error_of("vgg16", 32, 4, {{"pretrained", false}, {"mode", "finetune"}, {"trainable_blocks", int64_t{6}}}),
            "configs/transfer.toml:4: [model] trainable_blocks must be in 1..5 (was 6)");
  EXPECT_EQ(error_of("vgg16", 16, 4, {{"pretrained", false}, {"mode", "finetune"}}),
            "model \"vgg16\": expected 3-channel (RGB) images of at least 32x32 pixels and at least 2 classes, found "
            "3 channels, 16x16 pixels and 4 classes; check [data] image_size (224 is what ImageNet weights were "
            "trained at)");
  EXPECT_EQ(error_of("torchscript", 32, 4, {}),
            "configs/transfer.toml:1: [model] module is required: the TorchScript feature extractor file, e.g. "
            "module = \"resnet50.ts\" written by \"/usr/bin/python3 scripts/export_torchvision.py resnet50 "
            "--pretrained --torchscript resnet50.ts\" or by torch.jit.save(torch.jit.script(model), path)");
}

// --- modes --------------------------------------------------------------------------------

TEST_F(TransferTest, FrozenTrainingLeavesTheBackboneBitIdentical) {
  REQUIRE_TORCHVISION();
  auto network = create("resnet50", 32, 4, {{"weights", fixture("resnet50_seed7.pt")}, {"hidden_units", int64_t{16}}});
  ASSERT_NE(network->frozen_features(), nullptr);
  auto groups = network->parameter_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "backbone");
  EXPECT_FALSE(groups[0].trainable);
  EXPECT_EQ(groups[1].name, "head");
  std::vector<torch::Tensor> trainable;
  for (const auto& g : groups)
    if (g.trainable) trainable.insert(trainable.end(), g.parameters.begin(), g.parameters.end());
  const auto before = backbone_state(*network);
  const torch::Tensor head_before = network->named_parameters()["head.hidden.weight"].detach().clone();

  bachlab::host::TrainerParts parts;
  parts.model = network;
  parts.optimizer = std::make_shared<torch::optim::Adam>(trainable, torch::optim::AdamOptions(1e-3));
  bachlab::host::TrainSettings settings;
  settings.epochs = 2;
  settings.batch_size = 4;
  settings.threads = 2;
  bachlab::host::Trainer trainer(parts, settings, 3);
  bachlab::host::TensorSplit train{random_images(8, 32, 1), torch::tensor({0, 1, 2, 3, 0, 1, 2, 3})};
  trainer.fit(train, {});

  const auto after = backbone_state(*network);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, tensor] : before) EXPECT_TRUE(torch::equal(tensor, after.at(name))) << name << " changed";
  EXPECT_FALSE(torch::equal(head_before, network->named_parameters()["head.hidden.weight"]));
}

TEST_F(TransferTest, FinetuneTrainsOnlyTheLastBlocksWithTheirOwnRate) {
  REQUIRE_TORCHVISION();
  for (bool train_batch_norm : {false, true}) {
    auto network = create("resnet50", 32, 4,
                          {{"weights", fixture("resnet50_seed7.pt")}, {"mode", "finetune"},
                           {"trainable_blocks", int64_t{3}}, {"backbone_lr_scale", 0.25},
                           {"train_batch_norm", train_batch_norm}});
    EXPECT_EQ(network->frozen_features(), nullptr);
    auto groups = network->parameter_groups();
    ASSERT_EQ(groups.size(), 3u);
    EXPECT_EQ(groups[1].name, "finetune");
    EXPECT_TRUE(groups[1].trainable);
    EXPECT_EQ(groups[1].lr_scale, 0.25);
    // layer4: three blocks of three convolutions and three batch norms, plus the downsample.
    EXPECT_EQ(groups[1].parameters.size(), 3u * 9u + 3u);

    const auto before = backbone_state(*network);
    std::vector<torch::Tensor> trainable = groups[1].parameters;
    trainable.insert(trainable.end(), groups[2].parameters.begin(), groups[2].parameters.end());
    torch::optim::Adam optimizer(trainable, torch::optim::AdamOptions(1e-2));
    network->train();
    EXPECT_FALSE(network->named_modules()["layer3.5.bn1"]->is_training());
    EXPECT_EQ(network->named_modules()["layer4.2.bn1"]->is_training(), train_batch_norm);
    EXPECT_TRUE(network->named_modules()["head"]->is_training());
    torch::Tensor x = random_images(4, 32, 2).to(torch::kFloat32) / 255;
    torch::Tensor loss = torch::nn::functional::cross_entropy(network->forward(x), torch::tensor({0, 1, 2, 3}));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();

    const auto after = backbone_state(*network);
    for (const auto& [name, tensor] : before) {
      const bool in_layer4 = name.rfind("layer4.", 0) == 0;
      const bool statistic = name.find("running_") != std::string::npos || name.find("num_batches") != std::string::npos;
      const bool should_change = in_layer4 && (!statistic || train_batch_norm);
      EXPECT_EQ(!torch::equal(tensor, after.at(name)), should_change)
          << name << (should_change ? " did not change" : " changed") << " (train_batch_norm " << train_batch_norm
          << ")";
    }
  }
}

TEST_F(TransferTest, FromScratchTrainsEveryBlockAtTheFullRate) {
  auto network = create("vgg16", 32, 4, {{"pretrained", false}, {"mode", "finetune"}});
  auto groups = network->parameter_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "finetune");
  EXPECT_EQ(groups[0].lr_scale, 1.0);
  EXPECT_EQ(groups[0].parameters.size(), 26u);  // 13 convolutions, weight and bias each
  for (const auto& p : network->parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_EQ(network->frozen_features(), nullptr);
}

TEST_F(TransferTest, Vgg16HeadCarriesTheStudysL2Penalty) {
  auto network = create("vgg16", 32, 4, {{"pretrained", false}, {"mode", "finetune"}, {"hidden_units", int64_t{8}},
                                         {"l2", 0.02}});
  torch::Tensor kernel = network->named_parameters()["head.hidden.weight"];
  EXPECT_EQ(kernel.sizes(), (std::vector<int64_t>{8, 25088}));
  EXPECT_NEAR(network->regularization().item<double>(), 0.02 * kernel.pow(2).sum().item<double>(), 1e-6);
  auto resnet = create("resnet50", 32, 4, {{"pretrained", false}, {"mode", "finetune"}});
  EXPECT_FALSE(resnet->regularization().defined());
  EXPECT_NE(resnet->named_modules()["head.batch_norm"]->as<torch::nn::BatchNorm1d>(), nullptr);
}

TEST_F(TransferTest, ForwardIsTheHeadOfTheExtractedFeatures) {
  REQUIRE_TORCHVISION();
  for (const auto& [model, file] : std::vector<std::pair<std::string, std::string>>{
           {"resnet50", "resnet50_seed7.pt"}, {"vgg16", "vgg16_seed7_notop.pt"}}) {
    auto network = create(model, 32, 4, {{"weights", fixture(file)}});
    network->eval();
    torch::NoGradGuard no_grad;
    torch::Tensor x = random_images(3, 32, 5).to(torch::kFloat32) / 255;
    EXPECT_TRUE(torch::allclose(network->forward(x), network->frozen_features()->head(network->frozen_features()->extract_features(x)), 1e-6, 1e-6))
        << model;
    const std::string key = network->frozen_features()->features_cache_key();
    EXPECT_NE(key.find(" bytes "), std::string::npos) << key;
  }
}

}  // namespace
