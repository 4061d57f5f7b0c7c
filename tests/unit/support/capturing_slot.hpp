#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <future>

#include "server/https_server.hpp"

namespace xmetrics::testing {

// A ResponseSlot that captures the one response a handler gives; timers run on `ioc`.
class CapturingSlot final : public server::ResponseSlot {
 public:
  explicit CapturingSlot(boost::asio::io_context& ioc) : ioc_(ioc) {}
  void respond(server::HttpResponse&& response) override {
    if (answered_.exchange(true)) return;
    promise_.set_value(std::move(response));
  }
  boost::asio::any_io_executor executor() override { return ioc_.get_executor(); }
  server::HttpResponse get() {
    auto f = promise_.get_future();
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return f.get();
  }

 private:
  boost::asio::io_context& ioc_;
  std::atomic<bool> answered_{false};
  std::promise<server::HttpResponse> promise_;
};

}  // namespace xmetrics::testing
