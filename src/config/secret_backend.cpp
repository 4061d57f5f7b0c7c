#include "config/secret_backend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "core/strings.hpp"

extern char** environ;

namespace xmetrics::config {
namespace {

std::string systemError(const std::string& what) { return what + ": " + std::strerror(errno); }

// As the Agent's checkRights: nobody but the owner, who must be us, may change or run it.
std::optional<std::string> checkRights(const SecretBackendCall& call) {
  struct stat st {};
  if (::stat(call.command.c_str(), &st) != 0) return systemError("cannot stat it");
  if (!S_ISREG(st.st_mode)) return std::string("it is not a regular file");
  mode_t forbidden = call.allowGroupExec ? (S_IWGRP | S_IRWXO) : (S_IRWXG | S_IRWXO);
  if ((st.st_mode & forbidden) != 0) {
    return std::string(call.allowGroupExec ? "others have rights on it or its group may write it"
                                           : "its group or others have rights on it") +
           " (chmod 700 it, as the Agent requires)";
  }
  if (st.st_uid != ::geteuid()) {
    return "it is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
           std::to_string(::geteuid()) + " that xmetrics runs as";
  }
  if ((st.st_mode & S_IXUSR) == 0) return std::string("its owner may not execute it");
  return std::nullopt;
}

struct Pipe {
  int fds[2] = {-1, -1};
  ~Pipe() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  void closeEnd(int i) {
    if (fds[i] >= 0) ::close(fds[i]);
    fds[i] = -1;
  }
};

// A command that exits without reading stdin makes our write fail with EPIPE; the SIGPIPE that
// comes with it must not kill xmetrics (this runs before `serve` ignores SIGPIPE). Blocked for the
// exchange on this thread, and a pending one consumed before unblocking.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &previous_);
  }
  ~SigpipeBlocked() {
    timespec zero{};
    while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_, previous_;
};

}  // namespace

std::optional<std::string> encryptedHandle(std::string_view value) {
  if (value.size() < 6 || !value.starts_with("ENC[") || !value.ends_with("]")) return std::nullopt;
  return std::string(value.substr(4, value.size() - 5));
}

std::expected<std::map<std::string, std::string>, std::string> parseSecretBackendOutput(
    std::string_view output, const std::vector<std::string>& handles) {
  boost::system::error_code ec;
  auto json = boost::json::parse(output, ec);
  if (ec || !json.is_object()) {
    return std::unexpected(
        std::string("its output is not a JSON object of handle: {value, error}"));
  }
  std::map<std::string, std::string> secrets;
  for (const auto& handle : handles) {
    const auto* entry = json.as_object().if_contains(handle);
    if (!entry || !entry->is_object()) {
      return std::unexpected("it gave nothing for secret \"" + handle + "\"");
    }
    const auto& object = entry->as_object();
    if (const auto* error = object.if_contains("error"); error && !error->is_null()) {
      std::string text = error->is_string() ? std::string(error->as_string()) : "an error";
      return std::unexpected("secret \"" + handle + "\": " + core::oneLine(core::validUtf8(text)));
    }
    const auto* value = object.if_contains("value");
    if (!value || !value->is_string()) {
      return std::unexpected("secret \"" + handle + "\" has no string value");
    }
    secrets[handle] = std::string(value->as_string());
  }
  return secrets;
}

std::expected<std::map<std::string, std::string>, std::string> runSecretBackend(
    const SecretBackendCall& call) {
  auto fail = [&](const std::string& why) -> std::unexpected<std::string> {
    return std::unexpected("secret-backend-command " + call.command + ": " + why);
  };
  if (auto bad = checkRights(call)) return fail(*bad);

  boost::json::array secrets;
  for (const auto& h : call.handles) secrets.emplace_back(h);
  std::string input =
      boost::json::serialize(boost::json::object{{"version", "1.0"}, {"secrets", secrets}});

  Pipe in, out, err;
  for (Pipe* p : {&in, &out, &err}) {
    if (::pipe2(p->fds, O_CLOEXEC) != 0) return fail(systemError("pipe"));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fds[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fds[1], 2);
  std::vector<char*> argv{const_cast<char*>(call.command.c_str())};
  for (const auto& a : call.arguments) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int spawned = ::posix_spawn(&pid, call.command.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    errno = spawned;
    return fail(systemError("cannot run it"));
  }
  in.closeEnd(0);
  out.closeEnd(1);
  err.closeEnd(1);
  for (int fd : {in.fds[1], out.fds[0], err.fds[0]}) ::fcntl(fd, F_SETFL, O_NONBLOCK);

  SigpipeBlocked sigpipeBlocked;
  std::string stdoutText, stderrText;
  std::size_t written = 0;
  bool tooLarge = false, timedOut = false;
  auto deadline = std::chrono::steady_clock::now() + call.timeout;
  while (out.fds[0] >= 0 || err.fds[0] >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    std::array<pollfd, 3> polled{
        {{in.fds[1], POLLOUT, 0}, {out.fds[0], POLLIN, 0}, {err.fds[0], POLLIN, 0}}};
    int wait = static_cast<int>(std::min<int64_t>(left.count(), 60'000));
    if (::poll(polled.data(), polled.size(), wait) < 0) {
      if (errno == EINTR) continue;
      timedOut = true;  // cannot watch it any more: treated as not answering
      break;
    }
    if (in.fds[1] >= 0 && (polled[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in.fds[1], input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN) written = input.size();  // it closed stdin: fine
      if (written >= input.size()) in.closeEnd(1);
    }
    for (auto [index, pipe, text, limit] : {std::tuple{1, &out, &stdoutText, call.outputMaxSize},
                                            std::tuple{2, &err, &stderrText, std::size_t{4096}}}) {
      if (pipe->fds[0] < 0 || !(polled[index].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      char buffer[4096];
      ssize_t n = ::read(pipe->fds[0], buffer, sizeof buffer);
      if (n > 0) {
        text->append(buffer, static_cast<std::size_t>(n));
        if (text->size() > limit) {
          if (index == 1) tooLarge = true;
          text->resize(limit);
        }
      } else if (n == 0 || errno != EAGAIN) {
        pipe->closeEnd(0);
      }
    }
    if (tooLarge) break;
  }
  // A command that closed its output may still not exit: it gets until the same deadline.
  int status = 0;
  bool exited = false;
  while (!timedOut && !tooLarge) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) {
      exited = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      timedOut = true;
      break;
    }
    ::usleep(10'000);
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (timedOut) {
    return fail("it did not answer within secret-backend-timeout " +
                std::to_string(call.timeout.count()) + "s");
  }
  if (tooLarge) {
    return fail("its output is larger than secret-backend-output-max-size " +
                std::to_string(call.outputMaxSize) + " bytes");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string why = WIFEXITED(status)
                          ? "it exited with " + std::to_string(WEXITSTATUS(status))
                          : "it was killed by signal " + std::to_string(WTERMSIG(status));
    auto said = core::oneLine(core::validUtf8(stderrText));
    if (said.size() > 200) said = said.substr(0, 200) + "...";
    return fail(why + (said.empty() ? "" : ": " + said));
  }
  auto parsed = parseSecretBackendOutput(stdoutText, call.handles);
  if (!parsed) return fail(parsed.error());
  return parsed;
}

}  // namespace xmetrics::config
