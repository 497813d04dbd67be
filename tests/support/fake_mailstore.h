// FakeMailstore: an in-memory Mailstore for unit tests of code that delivers.
//
// Contract: records every accepted delivery (recipient, exact message bytes,
// delivery id "fake-<n>") behind a mutex, so it may be used from several
// threads. fail_next() makes the next N deliveries fail with the given status
// and records nothing for them.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mta/store/mailstore.h"

namespace stokend::store {

class FakeMailstore : public Mailstore {
 public:
  struct Delivery {
    Recipient recipient;
    std::string message;
    std::string delivery_id;
  };

  DeliveryResult deliver(const Recipient& recipient, std::string_view message) override {
    std::lock_guard lock(mutex_);
    ++attempts_;
    if (failures_left_ > 0) {
      --failures_left_;
      return DeliveryResult{failure_status_, "", "simulated mailstore failure"};
    }
    std::string delivery_id = "fake-" + std::to_string(deliveries_.size() + 1);
    deliveries_.push_back(Delivery{recipient, std::string(message), delivery_id});
    return DeliveryResult{DeliveryResult::Status::delivered, std::move(delivery_id), ""};
  }

  // The next `count` deliveries fail with `status` (temporary by default).
  void fail_next(std::size_t count,
                 DeliveryResult::Status status = DeliveryResult::Status::temporary_failure) {
    std::lock_guard lock(mutex_);
    failures_left_ = count;
    failure_status_ = status;
  }

  // A copy of the deliveries so far, in order.
  std::vector<Delivery> deliveries() const {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }

  std::size_t delivery_count() const {
    std::lock_guard lock(mutex_);
    return deliveries_.size();
  }

  // Calls of deliver(), failed ones included.
  std::size_t attempt_count() const {
    std::lock_guard lock(mutex_);
    return attempts_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Delivery> deliveries_;
  std::size_t attempts_ = 0;
  std::size_t failures_left_ = 0;
  DeliveryResult::Status failure_status_ = DeliveryResult::Status::temporary_failure;
};

}  // namespace stokend::store
