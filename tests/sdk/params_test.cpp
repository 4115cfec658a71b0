// sdk::ParamTable and value formatting: what plugin authors rely on and users read.
#include <bachlab/sdk/param_table.h>

#include <gtest/gtest.h>

namespace bachlab::sdk {
namespace {

TEST(Value, FormatsAsTomlWouldWriteIt) {
  EXPECT_EQ(to_string(Value(0.001)), "0.001");
  EXPECT_EQ(to_string(Value(10.0)), "10.0");
  EXPECT_EQ(to_string(Value(1e-12)), "1e-12");
  EXPECT_EQ(to_string(Value(int64_t{-3})), "-3");
  EXPECT_EQ(to_string(Value(true)), "true");
  EXPECT_EQ(to_string(Value(std::string("same"))), "\"same\"");
  EXPECT_EQ(to_string(Value(std::vector<Scalar>{int64_t{3}, std::string("x")})), "[3, \"x\"]");
}

TEST(ClosestMatch, SuggestsOnlyNearMisses) {
  EXPECT_EQ(closest_match("epohcs", {"epochs", "batch_size"}), "epochs");
  EXPECT_EQ(closest_match("learning_rate", {"lr", "epochs"}), "");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(Params, DefaultsWhenAbsentAndNoProblems) {
  ParamTable params("[model]");
  EXPECT_EQ(params.get_int("filters", 64, {32, 256}), 64);
  EXPECT_DOUBLE_EQ(params.get_float("dropout", 0.5), 0.5);
  EXPECT_TRUE(params.problems().empty());
}

TEST(Params, IntegersAreAcceptedAsFloatsButNotTheReverse) {
  ParamTable params("[optimizer]");
  params.set("lr", int64_t{1});
  params.set("filters", 32.0, {"m.toml", 2});
  EXPECT_DOUBLE_EQ(params.get_float("lr", 0.1), 1.0);
  EXPECT_EQ(params.get_int("filters", 7), 7);
  EXPECT_EQ(params.problems(), (std::vector<std::string>{"m.toml:2: [optimizer] filters must be an integer (was float 32.0)"}));
}

TEST(Params, ChoicesListTheOptionsAndSuggest) {
  ParamTable params("[model]");
  params.set("padding", std::string("sme"), {"m.toml", 4});
  EXPECT_EQ(params.get_string("padding", "same", {"same", "valid"}), "same");
  EXPECT_EQ(params.problems(),
            (std::vector<std::string>{"m.toml:4: [model] padding must be one of \"same\", \"valid\" (was \"sme\"); did you mean \"same\"?"}));
}

TEST(Params, ListsAreCheckedElementByElement) {
  ParamTable params("[augment]");
  params.set("sizes", std::vector<Scalar>{int64_t{3}, int64_t{99}}, {"a.toml", 1});
  EXPECT_EQ(params.get_int_list("sizes", {1}, {1, 11}), (std::vector<int64_t>{1}));
  EXPECT_EQ(params.problems(), (std::vector<std::string>{"a.toml:1: [augment] sizes must be in 1..11 (was [3, 99])"}));
}

TEST(Params, UnknownKeysWithoutACloseMatchListTheKnownOnes) {
  ParamTable params("[optimizer]");
  params.set("learning_rate", 0.1, {"o.toml", 3});
  params.get_float("lr", 0.001);
  params.get_float("weight_decay", 0.0);
  EXPECT_EQ(params.problems(), (std::vector<std::string>{
                                   "o.toml:3: [optimizer] unknown key \"learning_rate\"; known keys: lr, weight_decay"}));
}

TEST(Params, CheckThrowsEveryProblemAtOnce) {
  ParamTable params("[t]");
  params.set("a", std::string("x"), {"t.toml", 1});
  params.set("b", int64_t{-1}, {"t.toml", 2});
  params.get_bool("a", false);
  params.get_int("b", 0, {0, {}});
  try {
    params.check();
    FAIL() << "check() must throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "t.toml:1: [t] a must be true or false (was string \"x\")\nt.toml:2: [t] b must be >= 0 (was -1)");
  }
}

// What check() throws carries each problem as recorded, so a caller acts on the table and
// key (the study check finds its dimension by them) and prints text(), the line above.
TEST(Params, CheckThrowsTheProblemsWithTheirTableKeyAndOrigin) {
  ParamTable params("[t]", {"t.toml", 1});
  params.set("b", int64_t{-1}, {"t.toml", 2});
  params.set("colour", std::string("red"), {"t.toml", 3});
  params.get_int("b", 0, {0, {}});
  params.get_int("color", 0);
  params.fail("c", "needs b");
  try {
    params.check();
    FAIL() << "check() must throw";
  } catch (const ParamsError& e) {
    ASSERT_EQ(e.problems().size(), 3u);
    const ParamProblem& range = e.problems()[0];
    EXPECT_EQ(range.table, "[t]");
    EXPECT_EQ(range.key, "b");
    EXPECT_EQ(range.origin.prefix(), "t.toml:2: ");
    EXPECT_EQ(range.message, "b must be >= 0 (was -1)");
    EXPECT_FALSE(range.unknown_key);
    EXPECT_EQ(range.description(), "[t] b must be >= 0 (was -1)");
    // A key the config did not give is located at its table.
    EXPECT_EQ(e.problems()[1].key, "c");
    EXPECT_EQ(e.problems()[1].text(), "t.toml:1: [t] c needs b");
    const ParamProblem& unknown = e.problems()[2];
    EXPECT_EQ(unknown.key, "colour");
    EXPECT_TRUE(unknown.unknown_key);
    EXPECT_EQ(unknown.text(), "t.toml:3: [t] unknown key \"colour\"; did you mean \"color\"?");
    std::vector<std::string> texts;
    for (const auto& problem : e.problems()) texts.push_back(problem.text());
    EXPECT_EQ(texts, params.problems());
    EXPECT_EQ(std::string(e.what()), texts[0] + "\n" + texts[1] + "\n" + texts[2]);
  }
  EXPECT_EQ((ParamProblem{"", "", {}, "a plugin's own error"}.text()), "a plugin's own error");
}

TEST(Params, FailRecordsAPluginRuleAtTheKey) {
  ParamTable params("[model]");
  params.set("kernel_size", int64_t{11}, {"m.toml", 9});
  params.fail("kernel_size", "is too large for a 32x32 input");
  EXPECT_EQ(params.problems(), (std::vector<std::string>{"m.toml:9: [model] kernel_size is too large for a 32x32 input"}));
}

TEST(Params, OriginIsTheKeysOrTheTablesWhenAbsent) {
  ParamTable params("[tune.space.model.filters]", {"study.toml", 12});
  params.set("type", std::string("int"), {"study.toml", 13});
  EXPECT_EQ(params.origin("type").file, "study.toml");
  EXPECT_EQ(params.origin("type").line, 13);
  EXPECT_EQ(params.origin("min").file, "study.toml");
  EXPECT_EQ(params.origin("min").line, 12);
  EXPECT_EQ(ParamTable().origin("min").prefix(), "");
}

TEST(Params, GetValueMarksTheKeyReadWhateverItsType) {
  ParamTable params("[tune.space.model.act]");
  const Value values = std::vector<Scalar>{std::string("relu"), true};
  params.set("values", values, {"study.toml", 4});
  params.set("valeus", int64_t{3}, {"study.toml", 5});
  const auto read = params.get_value("values");
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, values);
  EXPECT_FALSE(params.get_value("absent").has_value());
  // The value is left as given and no type problem is recorded: the caller validates it.
  EXPECT_EQ(params.raw("values"), values);
  EXPECT_EQ(params.unknown_keys(), (std::vector<std::string>{"valeus"}));
  EXPECT_EQ(params.problems(),
            (std::vector<std::string>{"study.toml:5: [tune.space.model.act] unknown key \"valeus\"; did you mean \"values\"?"}));
}

}  // namespace
TEST(Params, EveryGetterRecordsTheSpecOfItsKey) {
  ParamTable params("[model]");
  params.set("filters", int64_t{64});
  params.get_int("filters", 32, {32, 256});
  params.get_float("dropout", 0.5, {0.0, {}});
  params.get_float("lr", 1e-3, {{}, 10.0});
  params.get_bool("batch_norm", false);
  params.get_string("padding", "same", {"same", "valid"});
  params.get_int_list("units", {128, 64}, {1, 65536});
  params.get_float_list("rates", {0.5});
  params.get_string_list("classes", {"a", "b"});
  params.get_path("weights", "");
  params.get_value("anything");
  const auto& specs = params.specs();
  EXPECT_EQ(specs.at("filters"), (KeySpec{"integer", "32", "32..256", ""}));
  EXPECT_EQ(specs.at("dropout"), (KeySpec{"number", "0.5", ">= 0.0", ""}));
  EXPECT_EQ(specs.at("lr"), (KeySpec{"number", "0.001", "<= 10.0", ""}));
  EXPECT_EQ(specs.at("batch_norm"), (KeySpec{"bool", "false", "", ""}));
  EXPECT_EQ(specs.at("padding"), (KeySpec{"string", "\"same\"", "\"same\", \"valid\"", ""}));
  EXPECT_EQ(specs.at("units"), (KeySpec{"list of integers", "[128, 64]", "1..65536", ""}));
  EXPECT_EQ(specs.at("rates"), (KeySpec{"list of numbers", "[0.5]", "", ""}));
  EXPECT_EQ(specs.at("classes"), (KeySpec{"list of strings", "[\"a\", \"b\"]", "", ""}));
  EXPECT_EQ(specs.at("weights"), (KeySpec{"path", "\"\"", "", ""}));
  EXPECT_EQ(specs.at("anything"), (KeySpec{"any", "", "", ""}));
  // What the config gave does not change the spec: it is what the reader asked.
  EXPECT_TRUE(params.problems().empty());
}

TEST(Params, DescribeOverridesOnlyTheFieldsItGives) {
  ParamTable params("[tune]");
  params.get_int("seed", 42, {0, {}});
  params.describe("seed", "", "the [experiment] seed");
  EXPECT_EQ(params.specs().at("seed"), (KeySpec{"integer", "the [experiment] seed", ">= 0", ""}));
}

TEST(Params, SpecsNameThePluginThatAskedAndTheHostOtherwise) {
  ParamTable params("[model]");
  params.get_string("plugin", "");
  params.set_reader("model model4a");
  params.get_int("filters", 32);
  params.set_reader("");
  params.get_int("extra", 1);
  EXPECT_EQ(params.specs().at("plugin").reader, "");
  EXPECT_EQ(params.specs().at("filters").reader, "model model4a");
  EXPECT_EQ(params.specs().at("extra").reader, "");
}

TEST(Params, RangeMessagesMatchTheRecordedRule) {
  ParamTable params("[train]");
  params.set("epochs", int64_t{0}, {"t.toml", 3});
  params.set("min_lr", -1.0, {"t.toml", 4});
  params.get_int("epochs", 20, {1, 100000});
  params.get_float("min_lr", 0.0, {0.0, {}});
  EXPECT_EQ(params.problems(), (std::vector<std::string>{"t.toml:3: [train] epochs must be in 1..100000 (was 0)",
                                                         "t.toml:4: [train] min_lr must be >= 0.0 (was -1.0)"}));
}

}  // namespace bachlab::sdk
