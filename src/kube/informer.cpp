#include "kube/informer.hpp"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <random>

#include "core/json_fields.hpp"
#include "kube/watch_stream.hpp"

namespace xmetrics::kube {
namespace {

using core::json::str;

const boost::json::object* metadataOf(const boost::json::object& o) {
  auto* m = o.if_contains("metadata");
  return m && m->is_object() ? &m->as_object() : nullptr;
}

std::string encode(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

}  // namespace

std::string objectKey(const boost::json::object& object) {
  auto* m = metadataOf(object);
  if (!m) return {};
  std::string ns = str(*m, "namespace");
  return ns.empty() ? str(*m, "name") : ns + "/" + str(*m, "name");
}

Informer::Informer(KubeClient& client, std::string collectionPath, std::string fieldSelector,
                   OnChange onChange, std::string name)
    : client_(client),
      path_(std::move(collectionPath)),
      fieldSelector_(std::move(fieldSelector)),
      onChange_(std::move(onChange)),
      name_(std::move(name)) {}

Informer::~Informer() { stop(); }

void Informer::start() {
  thread_ = std::thread([this] { run(); });
}

void Informer::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

InformerStats Informer::stats() const {
  std::lock_guard lock(mutex_);
  auto s = stats_;
  s.objects = objects_.size();
  return s;
}

void Informer::publish() {
  ObjectMap copy;
  {
    std::lock_guard lock(mutex_);
    copy = objects_;
  }
  onChange_(copy);
}

void Informer::backoff(std::chrono::milliseconds& delay) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  auto jittered = delay + std::chrono::milliseconds(
                              std::uniform_int_distribution<int64_t>(0, delay.count() / 2)(rng));
  for (auto waited = std::chrono::milliseconds(0); waited < jittered && !stopping_;
       waited += std::chrono::milliseconds(50)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  delay = std::min(delay * 2, std::chrono::milliseconds(30'000));
}

void Informer::run() {
  std::chrono::milliseconds delay(500);
  while (!stopping_) {
    std::string resourceVersion;
    if (!list(resourceVersion)) {
      backoff(delay);
      continue;
    }
    delay = std::chrono::milliseconds(500);
    while (!stopping_) {
      if (!watch(resourceVersion)) break;  // relist
    }
  }
}

bool Informer::list(std::string& resourceVersion) {
  ObjectMap fresh;
  std::string continueToken;
  do {
    std::string query = "?limit=500";
    if (!fieldSelector_.empty()) query += "&fieldSelector=" + encode(fieldSelector_);
    if (!continueToken.empty()) query += "&continue=" + encode(continueToken);
    auto result = client_.get(path_ + query);
    if (!result) {
      std::string error = "list " + path_ + ": " + result.error().describe();
      spdlog::warn("component=kube informer={} event=list_failed error=\"{}\"", name_, error);
      std::lock_guard lock(mutex_);
      stats_.lastError = error;
      return false;
    }
    const auto& body = result->as_object();
    if (auto* items = body.if_contains("items"); items && items->is_array()) {
      for (const auto& item : items->as_array()) {
        if (item.is_object()) fresh[objectKey(item.as_object())] = item.as_object();
      }
    }
    auto* meta = metadataOf(body);
    continueToken = meta ? str(*meta, "continue") : "";
    resourceVersion = meta ? str(*meta, "resourceVersion") : "";
  } while (!continueToken.empty() && !stopping_);
  {
    std::lock_guard lock(mutex_);
    objects_ = std::move(fresh);
    stats_.synced = true;
    ++stats_.lists;
    stats_.lastError.clear();
  }
  spdlog::debug("component=kube informer={} event=listed objects={} resource_version={}", name_,
                stats().objects, resourceVersion);
  publish();
  return true;
}

bool Informer::watch(std::string& resourceVersion) {
  std::string query = "?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=" +
                      encode(resourceVersion);
  if (!fieldSelector_.empty()) query += "&fieldSelector=" + encode(fieldSelector_);
  WatchStreamReader reader;
  bool relist = false;
  bool changed = false;
  auto onEvent = [&](WatchEvent&& event) {
    const auto& obj = event.object;
    if (event.type == "ERROR") {
      // 410 Gone: our resourceVersion is too old; anything else: start over as well.
      auto* code = obj.if_contains("code");
      spdlog::info("component=kube informer={} event=watch_error code={} message=\"{}\"", name_,
                   code ? boost::json::serialize(*code) : "?", str(obj, "message"));
      relist = true;
      return false;
    }
    if (auto* meta = metadataOf(obj)) {
      auto rv = str(*meta, "resourceVersion");
      if (!rv.empty()) resourceVersion = rv;
    }
    if (event.type == "BOOKMARK") return true;
    std::lock_guard lock(mutex_);
    ++stats_.events;
    stats_.lastEvent = std::chrono::system_clock::now();
    if (event.type == "DELETED") {
      objects_.erase(objectKey(obj));
    } else {
      auto key = objectKey(obj);
      objects_[std::move(key)] = std::move(event.object);
    }
    changed = true;
    return true;
  };
  auto onData = [&](std::string_view chunk) {
    bool goOn = reader.feed(chunk, onEvent);
    // Publish once per chunk: a burst of events costs one recomputation, not one per event.
    if (changed) {
      publish();
      changed = false;
    }
    if (reader.overflowed()) {
      spdlog::warn("component=kube informer={} event=watch_line_too_long max_bytes={}", name_,
                   WatchStreamReader::kDefaultMaxLineBytes);
      relist = true;
    }
    return goOn && !stopping_.load();
  };
  auto status = client_.stream(path_ + query, onData, &stopping_);
  {
    std::lock_guard lock(mutex_);
    ++stats_.watchRestarts;
    if (!status) stats_.lastError = "watch " + path_ + ": " + status.error();
  }
  if (stopping_) return true;
  if (!status) {
    spdlog::warn("component=kube informer={} event=watch_failed error=\"{}\"", name_,
                 status.error());
    std::chrono::milliseconds delay(1000);
    backoff(delay);
    return true;  // resume from the last version seen
  }
  if (*status == 410) return false;
  if (*status != 200) {
    spdlog::warn("component=kube informer={} event=watch_refused status={}", name_, *status);
    std::chrono::milliseconds delay(1000);
    backoff(delay);
    return false;
  }
  return !relist;
}

}  // namespace xmetrics::kube
