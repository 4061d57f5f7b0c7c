#include "kube/watch_stream.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace xmetrics::kube {
namespace {

struct Seen {
  std::vector<std::string> types;
  std::vector<std::string> names;
  std::function<bool(WatchEvent&&)> collect() {
    return [this](WatchEvent&& event) {
      types.push_back(event.type);
      auto* meta = event.object.if_contains("metadata");
      names.push_back(meta && meta->is_object() && meta->as_object().contains("name")
                          ? std::string(meta->as_object().at("name").as_string())
                          : "");
      return true;
    };
  }
};

TEST(WatchStreamReader, ALineSplitAcrossChunksIsOneEvent) {
  std::string line = R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})"
                     "\n";
  WatchStreamReader reader;
  Seen seen;
  for (char c : line) ASSERT_TRUE(reader.feed(std::string_view(&c, 1), seen.collect()));
  EXPECT_EQ(seen.types, std::vector<std::string>{"ADDED"});
  EXPECT_EQ(seen.names, std::vector<std::string>{"a"});
  EXPECT_EQ(reader.bufferedBytes(), 0u);
}

TEST(WatchStreamReader, SeveralEventsInOneChunkArriveInOrderAndCrlfIsAccepted) {
  WatchStreamReader reader;
  Seen seen;
  ASSERT_TRUE(reader.feed(R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})"
                          "\r\n"
                          R"({"type":"DELETED","object":{"metadata":{"name":"b"}}})"
                          "\n"
                          R"({"type":"MODIFIED","obj)",
                          seen.collect()));
  EXPECT_EQ(seen.types, (std::vector<std::string>{"ADDED", "DELETED"}));
  EXPECT_EQ(seen.names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(reader.bufferedBytes(), std::string_view(R"({"type":"MODIFIED","obj)").size());
}

TEST(WatchStreamReader, LinesThatAreNotEventsAreSkippedAndCounted) {
  WatchStreamReader reader;
  Seen seen;
  ASSERT_TRUE(
      reader.feed("\n\nnot json\n[1,2]\n{\"type\":\"ADDED\"}\n"
                  "{\"type\":\"ADDED\",\"object\":[]}\n"
                  "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"ok\"}}}\n",
                  seen.collect()));
  EXPECT_EQ(seen.names, std::vector<std::string>{"ok"});
  EXPECT_EQ(reader.skippedLines(), 4u);  // blank lines are not counted
}

TEST(WatchStreamReader, AFalseFromTheConsumerStopsAtThatEvent) {
  WatchStreamReader reader;
  int calls = 0;
  bool goOn = reader.feed(
      "{\"type\":\"ERROR\",\"object\":{\"code\":410}}\n{\"type\":\"ADDED\",\"object\":{}}\n",
      [&](WatchEvent&& event) {
        ++calls;
        return event.type != "ERROR";
      });
  EXPECT_FALSE(goOn);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(reader.overflowed());
}

TEST(WatchStreamReader, ALineWithoutEndPastTheBoundEndsTheStream) {
  WatchStreamReader reader(16);
  Seen seen;
  EXPECT_TRUE(reader.feed("{\"type\":\"ADDED\",", seen.collect()));  // 16 bytes: at the bound
  EXPECT_FALSE(reader.feed("x", seen.collect()));
  EXPECT_TRUE(reader.overflowed());
  EXPECT_EQ(reader.bufferedBytes(), 0u);
  // Nothing more is read from a stream that overflowed, even a complete event.
  EXPECT_FALSE(reader.feed("\n{\"type\":\"ADDED\",\"object\":{}}\n", seen.collect()));
  EXPECT_TRUE(seen.types.empty());
}

}  // namespace
}  // namespace xmetrics::kube
