#include <gtest/gtest.h>
#include <zlib.h>

#include <sstream>

#include "flare/flare.hpp"
#include "flare/tar_gz.hpp"

namespace xmetrics::flare {
namespace {

// The archive's bytes, ungzipped: a ustar stream whose member names sit at the start of headers.
std::string gunzip(const std::string& path) {
  gzFile in = gzopen(path.c_str(), "rb");
  std::string out;
  char buffer[4096];
  int n;
  while (in && (n = gzread(in, buffer, sizeof buffer)) > 0) out.append(buffer, n);
  if (in) gzclose(in);
  return out;
}

TEST(WriteFlare, WithNothingToReachItStillWritesWhatWasNotCollectedAndWhy) {
  std::string path = ::testing::TempDir() + "/flare-nothing.tar.gz";
  std::ostringstream out, err;
  EXPECT_EQ(writeFlare({.output = path}, out, err), 0);
  EXPECT_EQ(out.str(), path + " (1 files)\n");
  EXPECT_NE(err.str().find("flare: xmetrics: no --kubeconfig/--server"), std::string::npos);
  EXPECT_NE(err.str().find("flare: cluster: no --cluster-kubeconfig"), std::string::npos);
  auto tar = gunzip(path);
  EXPECT_EQ(tar.rfind("README.txt", 0), 0u);
  EXPECT_NE(tar.find("Not collected:\nxmetrics: no --kubeconfig/--server"), std::string::npos);
}

TEST(WriteFlare, AnUnreadableXmetricsKubeconfigStopsBeforeWriting) {
  std::string path = ::testing::TempDir() + "/flare-bad.tar.gz";
  std::ostringstream out, err;
  EXPECT_EQ(writeFlare({.kubeconfig = "/nonexistent/kubeconfig", .output = path}, out, err), 1);
  EXPECT_EQ(err.str().rfind("error: ", 0), 0u) << err.str();
  EXPECT_EQ(out.str(), "");
}

TEST(WriteTarGz, RefusesAPathItCannotCreate) {
  EXPECT_FALSE(writeTarGz("/nonexistent/dir/x.tar.gz", {{"a", "b"}}));
}

}  // namespace
}  // namespace xmetrics::flare
