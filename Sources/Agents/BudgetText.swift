// Agents: budgets in messages as they were set: max_cost_usd 0.0001 reads 0.0001, not 0.00.

import Foundation

package enum BudgetText {
    /// A dollar amount with as many decimals as it needs (up to 8), and at least two:
    /// 1 → "1.00", 0.0001 → "0.0001", 0.123456 → "0.123456".
    package static func usd(_ value: Double) -> String {
        var text = String(format: "%.8f", value)
        while text.hasSuffix("0"), let dot = text.firstIndex(of: "."), text.distance(from: dot, to: text.endIndex) > 3 {
            text.removeLast()
        }
        return text
    }

    /// "stopped at $X (max_cost_usd B)": spent with enough precision to compare with the budget.
    package static func costStop(spent: Double, budget: Double) -> String {
        "stopped at $\(usd(spent)) (max_cost_usd \(usd(budget)))"
    }
}
