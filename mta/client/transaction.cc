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

std::string as_temporary(const std::string& enhanced_code, const char* fallback) {
  if (enhanced_code.empty()) return fallback;
  return "4" + enhanced_code.substr(1);
}

}  // namespace stokend::client
