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

std::string RecipientResult::reply_line() const {
  int code = reply_code;
  if (code == 0) {
    code = status == DeliveryStatus::delivered   ? 250
           : status == DeliveryStatus::permanent ? 550
                                                 : 451;
  }
  std::string line = std::to_string(code);
  if (!enhanced_code.empty()) line += " " + enhanced_code;
  if (!text.empty()) line += " " + text;
  return line;
}

}  // namespace stokend::client
