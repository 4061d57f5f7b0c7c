#include "crd/datadog_metric_controller.hpp"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <set>

#include "core/time_format.hpp"
#include "crd/datadog_metric_status.hpp"

namespace xmetrics::crd {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kApiPrefix = "/apis/datadoghq.com/v1alpha1/namespaces/";

std::string objectPath(const std::string& id) {
  auto slash = id.find('/');
  return std::string(kApiPrefix) + id.substr(0, slash) + "/datadogmetrics/" + id.substr(slash + 1);
}

const boost::json::object* statusOf(const boost::json::object& object) {
  auto* s = object.if_contains("status");
  return s && s->is_object() ? &s->as_object() : nullptr;
}

// When the object's Active condition last became False; nullopt while it is active (or unknown).
std::optional<core::Clock::time_point> inactiveSince(const boost::json::object* status) {
  if (!status) return std::nullopt;
  auto* conditions = status->if_contains("conditions");
  if (!conditions || !conditions->is_array()) return std::nullopt;
  for (const auto& c : conditions->as_array()) {
    if (!c.is_object()) continue;
    const auto& o = c.as_object();
    auto* type = o.if_contains("type");
    auto* value = o.if_contains("status");
    auto* since = o.if_contains("lastTransitionTime");
    if (!type || !type->is_string() || type->as_string() != "Active") continue;
    if (!value || !value->is_string() || value->as_string() != "False") return std::nullopt;
    if (!since || !since->is_string()) return std::nullopt;
    return core::parseRfc3339(since->as_string());
  }
  return std::nullopt;
}

}  // namespace

DatadogMetricController::DatadogMetricController(kube::KubeClient& client,
                                                 catalog::Catalog& catalog,
                                                 store::ValueStore& values, ObjectsFn objects,
                                                 ControllerOptions options)
    : client_(client),
      catalog_(catalog),
      values_(values),
      objects_(std::move(objects)),
      options_(options),
      tokens_(options.writesPerSecond),
      lastRefill_(std::chrono::steady_clock::now()) {}

DatadogMetricController::~DatadogMetricController() { stop(); }

void DatadogMetricController::start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      reconcile();
      lock.lock();
      wake_.wait_for(lock, options_.tick, [this] { return stopping_; });
    }
  });
}

void DatadogMetricController::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ControllerStats DatadogMetricController::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

bool DatadogMetricController::takeWriteToken() {
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - lastRefill_).count();
  lastRefill_ = now;
  tokens_ = std::min(options_.writesPerSecond, tokens_ + elapsed * options_.writesPerSecond);
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

bool DatadogMetricController::backingOff(const std::string& id,
                                         std::chrono::steady_clock::time_point now) const {
  auto it = failures_.find(id);
  return it != failures_.end() && now < it->second.next;
}

void DatadogMetricController::failed(const std::string& id,
                                     std::chrono::steady_clock::time_point now,
                                     const std::string& what, const std::string& error) {
  auto& b = failures_[id];
  b.delay = std::min<std::chrono::seconds>(std::max<std::chrono::seconds>(b.delay * 2, 1s), 300s);
  b.next = now + b.delay;
  spdlog::warn("component=crd event={}_failed object={} retry_in={}s error=\"{}\"", what, id,
               b.delay.count(), error);
  std::lock_guard lock(mutex_);
  stats_.lastError = what + " of DatadogMetric " + id + ": " + error;
}

void DatadogMetricController::reconcile() {
  if (options_.isLeader && !options_.isLeader()) {
    // Another replica writes; when this one leads again it starts from what the objects say.
    written_.clear();
    creating_.clear();
    return;
  }
  if (options_.ready && !options_.ready()) return;
  auto objects = objects_();
  if (!objects) return;  // not listed yet: nothing is known to be missing
  auto now = core::Clock::now();
  manageAutogen(*objects, now);
  writeStatuses(*objects, now);
}

void DatadogMetricController::writeStatuses(const kube::ObjectMap& objects,
                                            core::Clock::time_point now) {
  auto references = catalog_.objectReferences();
  // The freshest value served through each object, and whether anything still resolves to it.
  std::map<std::string, store::MetricValuePtr> valueOf;
  values_.snapshot()->forEach([&](std::string_view, const store::MetricValuePtr& v) {
    if (v->metric->object.empty()) return;
    auto& best = valueOf[v->metric->object];
    bool better = !best || (v->sample && (!best->sample || v->sample->time > best->sample->time));
    if (better) best = v;
  });
  std::set<std::string> resolved;
  for (const auto& entry : catalog_.entries()) {
    if (!entry->object.empty()) resolved.insert(entry->object);
  }
  auto steadyNow = std::chrono::steady_clock::now();
  for (const auto& metric : catalog_.datadogMetrics()) {
    std::string id = metric.id();
    auto raw = objects.find(id);
    if (raw == objects.end()) continue;
    const boost::json::object* current = statusOf(raw->second);
    auto written = written_.find(id);
    if (written != written_.end()) current = &written->second.status;

    StatusInputs inputs{.object = &metric, .current = current, .now = now};
    if (auto r = references.find(id); r != references.end()) inputs.references = r->second;
    // An autogen object is active while an HPA names its query; a manual one also while it is
    // always-active or requested directly.
    inputs.active = !inputs.references.empty() ||
                    (!metric.autogen && (metric.alwaysActive || resolved.contains(id)));
    if (auto v = valueOf.find(id); v != valueOf.end()) inputs.value = v->second;
    auto desired = desiredStatus(inputs);

    auto change = compareStatus(current, desired);
    if (change == StatusChange::kNone) continue;
    if (change == StatusChange::kFreshness && written != written_.end() &&
        steadyNow - written->second.at < options_.freshnessInterval) {
      continue;
    }
    if (backingOff(id, steadyNow)) continue;
    if (!takeWriteToken()) break;  // the rest waits for the next pass
    auto result =
        client_.mergePatch(objectPath(id) + "/status", boost::json::object{{"status", desired}});
    if (result) {
      failures_.erase(id);
      std::lock_guard lock(mutex_);
      ++stats_.statusWrites;
      written_[id] = {std::move(desired), steadyNow};
    } else {
      {
        std::lock_guard lock(mutex_);
        ++stats_.statusWriteErrors;
      }
      failed(id, steadyNow, "status_write", result.error().describe());
    }
  }
  // Forget objects that are gone, so a recreated one is written afresh.
  std::erase_if(written_, [&](const auto& kv) { return !objects.contains(kv.first); });
}

void DatadogMetricController::manageAutogen(const kube::ObjectMap& objects,
                                            core::Clock::time_point now) {
  const auto& options = catalog_.options();
  auto steadyNow = std::chrono::steady_clock::now();
  std::erase_if(creating_, [&](const auto& kv) {
    return objects.contains(kv.first) || steadyNow - kv.second > std::chrono::seconds(30);
  });
  if (options.autogen) {
    auto references = catalog_.objectReferences();
    std::set<std::string> done;
    for (const auto& entry : catalog_.entries()) {
      if (entry->rule != catalog::Rule::kInline || entry->object.empty()) continue;
      const std::string& id = entry->object;
      if (!references.contains(id) || objects.contains(id) || creating_.contains(id) ||
          backingOff(id, steadyNow) || !done.insert(id).second) {
        continue;
      }
      if (!takeWriteToken()) break;
      auto slash = id.find('/');
      std::string ns = id.substr(0, slash), name = id.substr(slash + 1);
      boost::json::object body{
          {"apiVersion", "datadoghq.com/v1alpha1"},
          {"kind", "DatadogMetric"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"labels", {{"app.kubernetes.io/managed-by", "xmetrics"}}}}},
          {"spec", {{"query", entry->query}, {"externalMetricName", entry->metricName}}}};
      auto result = client_.post(std::string(kApiPrefix) + ns + "/datadogmetrics", body);
      if (result || result.error().status == 409) {
        failures_.erase(id);
        creating_[id] = steadyNow;
        spdlog::info("component=crd event=autogen_created object={} query=\"{}\"", id,
                     entry->query);
        std::lock_guard lock(mutex_);
        if (result) ++stats_.created;
      } else {
        failed(id, steadyNow, "autogen_create", result.error().describe());
      }
    }
  }
  // Garbage collection: the object's own Active condition records since when nothing named it, so
  // the expiry survives restarts and leader changes.
  auto referenced = catalog_.objectReferences();
  for (const auto& metric : catalog_.datadogMetrics()) {
    // With autogen on, any namespace: autogen objects another agent left (the Cluster Agent's,
    // taken over by the catalog) expire like xmetrics' own once nothing names them.
    if (!metric.autogen || (metric.ns != options.autogenNamespace && !options.autogen)) continue;
    if (referenced.contains(metric.id())) continue;  // named again before its status said so
    auto raw = objects.find(metric.id());
    if (raw == objects.end()) continue;
    auto since = inactiveSince(statusOf(raw->second));
    if (!since || now - *since < options_.autogenExpiry) continue;
    if (backingOff(metric.id(), steadyNow)) continue;
    if (!takeWriteToken()) break;
    auto result = client_.del(objectPath(metric.id()));
    if (result || result.error().status == 404) {
      failures_.erase(metric.id());
      spdlog::info("component=crd event=autogen_deleted object={} inactive_since={}", metric.id(),
                   core::rfc3339(*since));
      std::lock_guard lock(mutex_);
      if (result) ++stats_.deleted;
    } else {
      failed(metric.id(), steadyNow, "autogen_delete", result.error().describe());
    }
  }
}

}  // namespace xmetrics::crd
