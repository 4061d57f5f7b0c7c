#include "config/secret_backend.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace xmetrics::config {
namespace {

using std::chrono::seconds;

// A secret backend script, private to this user as the Agent requires.
std::string script(const std::string& name, const std::string& body, mode_t mode = 0700) {
  std::string path =
      ::testing::TempDir() + "/xmetrics-secret-" + name + "-" + std::to_string(::getpid());
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  ::chmod(path.c_str(), mode);
  return path;
}

SecretBackendCall call(const std::string& command, std::vector<std::string> handles) {
  return {.command = command, .timeout = seconds(5), .handles = std::move(handles)};
}

TEST(EncryptedHandle, OnlyAWholeEncValue) {
  EXPECT_EQ(encryptedHandle("ENC[api_key]"), "api_key");
  EXPECT_EQ(encryptedHandle("ENC[vault://a/b]"), "vault://a/b");
  EXPECT_FALSE(encryptedHandle("ENC[]"));
  EXPECT_FALSE(encryptedHandle("xENC[a]"));
  EXPECT_FALSE(encryptedHandle("plain"));
}

TEST(RunSecretBackend, SpeaksTheAgentsProtocol) {
  // The script echoes what it read on stdin as the value of "request", so the payload is checked.
  auto path =
      script("ok",
             "read -r input\n"
             "printf '{\"api\": {\"value\": \"k-123\", \"error\": null}, \"app\": {\"value\": "
             "\"%s\", \"error\": null}}' \"$(echo \"$input\" | sed 's/\"/\\\\\"/g')\"");
  auto secrets = runSecretBackend(call(path, {"api", "app"}));
  ASSERT_TRUE(secrets) << secrets.error();
  EXPECT_EQ(secrets->at("api"), "k-123");
  EXPECT_EQ(secrets->at("app"), R"({"version":"1.0","secrets":["api","app"]})");
}

TEST(RunSecretBackend, PassesItsArguments) {
  auto path = script("args", "cat >/dev/null; printf '{\"h\": {\"value\": \"%s\"}}' \"$1-$2\"");
  auto c = call(path, {"h"});
  c.arguments = {"one", "two"};
  auto secrets = runSecretBackend(c);
  ASSERT_TRUE(secrets) << secrets.error();
  EXPECT_EQ(secrets->at("h"), "one-two");
}

TEST(RunSecretBackend, AnErrorForOneSecretFailsNamingIt) {
  auto path = script(
      "err", "cat >/dev/null; echo '{\"h\": {\"value\": null, \"error\": \"no such key\"}}'");
  auto secrets = runSecretBackend(call(path, {"h"}));
  ASSERT_FALSE(secrets);
  EXPECT_NE(secrets.error().find("secret \"h\": no such key"), std::string::npos)
      << secrets.error();
}

TEST(RunSecretBackend, AMissingHandleFails) {
  auto path = script("missing", "cat >/dev/null; echo '{}'");
  auto secrets = runSecretBackend(call(path, {"h"}));
  ASSERT_FALSE(secrets);
  EXPECT_NE(secrets.error().find("nothing for secret \"h\""), std::string::npos);
}

TEST(RunSecretBackend, RefusesACommandOthersMayChange) {
  auto path = script("open", "echo '{}'", 0775);
  auto secrets = runSecretBackend(call(path, {"h"}));
  ASSERT_FALSE(secrets);
  EXPECT_NE(secrets.error().find("group or others have rights"), std::string::npos)
      << secrets.error();
  // Group execute is what allow-group-exec permits; group write never.
  ::chmod(path.c_str(), 0750);
  auto c = call(path, {"h"});
  c.allowGroupExec = true;
  EXPECT_EQ(runSecretBackend(c).error().find("rights"), std::string::npos);
  ::chmod(path.c_str(), 0770);
  EXPECT_NE(runSecretBackend(c).error().find("group may write"), std::string::npos);
}

TEST(RunSecretBackend, AHungCommandIsKilledAtTheTimeout) {
  auto path = script("hung", "sleep 30");
  auto c = call(path, {"h"});
  c.timeout = seconds(1);
  auto start = std::chrono::steady_clock::now();
  auto secrets = runSecretBackend(c);
  ASSERT_FALSE(secrets);
  EXPECT_NE(secrets.error().find("did not answer within secret-backend-timeout 1s"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
}

TEST(RunSecretBackend, ACommandThatClosesItsOutputButNeverExitsIsKilledToo) {
  auto path = script("closed", "exec >&- 2>&-; sleep 30");
  auto c = call(path, {"h"});
  c.timeout = seconds(1);
  auto start = std::chrono::steady_clock::now();
  auto secrets = runSecretBackend(c);
  ASSERT_FALSE(secrets);
  EXPECT_NE(secrets.error().find("did not answer within"), std::string::npos) << secrets.error();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
}

TEST(RunSecretBackend, OutputBeyondTheLimitIsRefused) {
  auto path = script("large", "cat >/dev/null; head -c 5000 /dev/zero | tr '\\0' x");
  auto c = call(path, {"h"});
  c.outputMaxSize = 1000;
  auto secrets = runSecretBackend(c);
  ASSERT_FALSE(secrets);
  EXPECT_NE(secrets.error().find("larger than secret-backend-output-max-size 1000"),
            std::string::npos);
}

TEST(RunSecretBackend, AFailedCommandSaysWhyButNeverItsOutput) {
  auto path = script(
      "exit",
      "cat >/dev/null; echo '{\"h\": {\"value\": \"s3cret\"}}'; echo 'vault sealed' >&2; exit 3");
  auto secrets = runSecretBackend(call(path, {"h"}));
  ASSERT_FALSE(secrets);
  EXPECT_NE(secrets.error().find("exited with 3: vault sealed"), std::string::npos)
      << secrets.error();
  EXPECT_EQ(secrets.error().find("s3cret"), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::config
