#include "server/api_handler.hpp"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <future>

#include "poller/poller.hpp"
#include "support/capturing_slot.hpp"
#include "support/fake_backend.hpp"
#include "support/test_certificates.hpp"

namespace xmetrics::server {
namespace {

using namespace std::chrono_literals;
namespace http = boost::beast::http;

using testing::CapturingSlot;

struct ApiHandlerTest : ::testing::Test {
  testing::FakeBackend backend;
  store::ValueStore values;
  catalog::Catalog catalog{{.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s}};
  poller::Poller poller{catalog, backend, values, {.refreshPeriod = 30s}};
  testing::TestCertificates certs{"api-handler"};
  auth::Authenticator authenticator{
      {.clientCa = certs.pool, .tokens = *auth::parseTokenFile("tok,alice,1\n", "t")}};
  auth::Authorizer authorizer;
  ApiHandler handler{
      {.maxAge = 120s, .firstFetchTimeout = 2s}, authenticator, authorizer, values, poller};
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread ioThread{[this] { ioc.run(); }};
  PeerCertificate admin = certs.client;

  ~ApiHandlerTest() override {
    work.reset();
    ioc.stop();
    ioThread.join();
  }

  HttpResponse get(std::string target, PeerCertificate peer, std::string accept = "") {
    HttpRequest req{http::verb::get, target, 11};
    if (!accept.empty()) req.set(http::field::accept, accept);
    auto slot = std::make_shared<CapturingSlot>(ioc);
    handler.handle(req, peer, slot);
    return slot->get();
  }
  HttpResponse get(std::string target) { return get(std::move(target), admin); }

  static boost::json::object json(const HttpResponse& r) {
    EXPECT_EQ(r[http::field::content_type], "application/json");
    return boost::json::parse(r.body()).as_object();
  }
};

constexpr const char* kMetric = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/";

TEST_F(ApiHandlerTest, FirstRequestFetchesSynchronouslyAndAnswersTheValue) {
  poller.start();
  backend.set("avg:requests{app:web}.rollup(30)", core::Sample{3, core::Clock::now() - 5s});
  auto r = get(std::string(kMetric) + "requests?labelSelector=app%3Dweb");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  auto items = json(r).at("items").as_array();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].at("value"), "3");
  // The second request is served from the snapshot without asking the backend again.
  auto callsBefore = backend.calls().size();
  EXPECT_EQ(get(std::string(kMetric) + "requests?labelSelector=app%3Dweb").result_int(), 200);
  EXPECT_EQ(backend.calls().size(), callsBefore);
  poller.stop();
}

TEST_F(ApiHandlerTest, SlowFirstFetchTimesOutWithAStatusNamingTheQuery) {
  // Poller not started: the fetch never happens, so the bounded wait ends it.
  auto r = get(std::string(kMetric) + "slow.metric");
  EXPECT_EQ(r.result_int(), 503);
  auto s = json(r);
  EXPECT_EQ(s.at("reason"), "ServiceUnavailable");
  EXPECT_NE(std::string(s.at("message").as_string()).find("avg:slow.metric{*}.rollup(30)"),
            std::string::npos);
}

TEST_F(ApiHandlerTest, NoDataIsNotFoundNamingMetricQueryAndCause) {
  poller.start();
  auto r = get(std::string(kMetric) + "missing.metric?labelSelector=env%3Dprod");
  EXPECT_EQ(r.result_int(), 404);
  std::string message(json(r).at("message").as_string());
  EXPECT_NE(message.find("\"missing.metric\""), std::string::npos) << message;
  EXPECT_NE(message.find("avg:missing.metric{env:prod}.rollup(30)"), std::string::npos);
  EXPECT_NE(message.find("no series for"), std::string::npos);
  poller.stop();
}

TEST_F(ApiHandlerTest, StaleValuesAreErrorsWithTheirAge) {
  poller.start();
  backend.set("avg:old{*}.rollup(30)", core::Sample{3, core::Clock::now() - 300s});
  auto r = get(std::string(kMetric) + "old");
  EXPECT_EQ(r.result_int(), 503);
  std::string message(json(r).at("message").as_string());
  EXPECT_NE(message.find("is 300s old"), std::string::npos) << message;
  EXPECT_NE(message.find("older than max-age 120s"), std::string::npos) << message;
  poller.stop();
}

TEST_F(ApiHandlerTest, MalformedSelectorIsBadRequestWithPosition) {
  auto r = get(std::string(kMetric) + "m?labelSelector=a%20in%20(b");
  EXPECT_EQ(r.result_int(), 400);
  auto s = json(r);
  EXPECT_EQ(s.at("reason"), "BadRequest");
  EXPECT_NE(std::string(s.at("message").as_string()).find("at position"), std::string::npos);
}

TEST_F(ApiHandlerTest, UnauthenticatedCallersGet401ButHealthIsOpen) {
  auto r = get("/apis/external.metrics.k8s.io/v1beta1", PeerCertificate{});
  EXPECT_EQ(r.result_int(), 401);
  EXPECT_EQ(json(r).at("reason"), "Unauthorized");
  EXPECT_EQ(get("/livez", PeerCertificate{}).result_int(), 200);
  // Not ready before the first refresh cycle; ready after.
  EXPECT_EQ(get("/readyz", PeerCertificate{}).result_int(), 503);
  poller.refreshAll();
  EXPECT_EQ(get("/readyz", PeerCertificate{}).result_int(), 200);
}

// Each backend's refresh loop is judged on its own: one stuck in a call for too long fails
// liveness, naming its backend, even though the others tick.
TEST_F(ApiHandlerTest, LivenessNamesTheBackendWhoseLoopIsStuck) {
  poller.refreshAll();
  ASSERT_EQ(get("/livez", PeerCertificate{}).result_int(), 200);
  auto status = *values.status();
  auto now = std::chrono::steady_clock::now();
  status.poller.loops = {{.backend = "embedded", .lastTick = now},
                         {.backend = "prometheus", .lastTick = now, .fetchingSince = now - 3600s}};
  values.publishStatus(status);
  auto r = get("/livez", PeerCertificate{});
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_NE(r.body().find("backend prometheus has been in one backend call for 3600s"),
            std::string::npos)
      << r.body();
  status.poller.loops[1].fetchingSince = now - 10s;  // a slow call, not a hang
  values.publishStatus(status);
  EXPECT_EQ(get("/livez", PeerCertificate{}).result_int(), 200);
}

TEST_F(ApiHandlerTest, TokenCallersAreAccepted) {
  HttpRequest req{http::verb::get, "/apis/external.metrics.k8s.io/v1beta1", 11};
  req.set(http::field::authorization, "Bearer tok");
  auto slot = std::make_shared<CapturingSlot>(ioc);
  handler.handle(req, PeerCertificate{}, slot);
  EXPECT_EQ(slot->get().result_int(), 200);
}

TEST_F(ApiHandlerTest, DiscoveryIsBoundedAndNeverEmpty) {
  auto list = json(get("/apis/external.metrics.k8s.io/v1beta1"));
  EXPECT_EQ(list.at("kind"), "APIResourceList");
  EXPECT_EQ(list.at("resources").as_array().size(), 1u);
}

TEST_F(ApiHandlerTest, ProtobufFirstAcceptStillGetsJson) {
  auto r = get("/apis/external.metrics.k8s.io/v1beta1", admin,
               "application/vnd.kubernetes.protobuf, */*");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[http::field::content_type], "application/json");
}

// The aggregator downloads both; valid documents stop its retries, a 5xx would be retried forever.
TEST_F(ApiHandlerTest, OpenApiIsAValidEmptyDocumentNeverAServerError) {
  auto v2 = get("/openapi/v2");
  EXPECT_EQ(v2.result_int(), 200);
  EXPECT_EQ(json(v2).at("swagger"), "2.0");
  auto v3 = get("/openapi/v3");
  EXPECT_EQ(v3.result_int(), 200);
  EXPECT_TRUE(json(v3).at("paths").as_object().empty());
  EXPECT_EQ(get("/openapi/v3/apis/external.metrics.k8s.io/v1beta1").result_int(), 404);
}

TEST_F(ApiHandlerTest, MetricNamesThatWouldChangeTheQueryAreRefused) {
  for (const char* name : {"a%2Cb", "foo%7B%2A%7D", "%1Fa", "1abc", "a%20b"}) {
    auto r = get(std::string(kMetric) + name);
    EXPECT_EQ(r.result_int(), 400) << name;
    EXPECT_NE(std::string(json(r).at("message").as_string()).find("invalid external metric name"),
              std::string::npos);
  }
}

TEST_F(ApiHandlerTest, UnknownPathsAre404Status) {
  auto r = get("/apis/external.metrics.k8s.io/v1beta1/namespaces/default");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_EQ(json(r).at("kind"), "Status");
}

}  // namespace
}  // namespace xmetrics::server
