// See transaction.h.
#include "mta/client/transaction.h"

#include <algorithm>

namespace stokend::client {

bool TransactionResult::all_delivered() const {
  return !recipients.empty() &&
         std::all_of(recipients.begin(), recipients.end(), [](const RecipientResult& result) {
           return result.status == DeliveryStatus::delivered;
         });
}

}  // namespace stokend::client
