// TestSupport: values collected from several threads (concurrentPerform iterations, callbacks), behind one lock.

import Synchronization

/// Appends and slot writes from any thread; reads see everything written before them.
package final class LockedCollector<Value: Sendable>: Sendable {
    private let values: Mutex<[Value]>

    /// Empty, for `append`.
    package init() { values = Mutex([]) }
    /// `count` slots holding `initial`, for `set`.
    package init(count: Int, initial: Value) { values = Mutex(Array(repeating: initial, count: count)) }

    package func append(_ value: Value) { values.withLock { $0.append(value) } }
    package func set(_ index: Int, _ value: Value) { values.withLock { $0[index] = value } }
    package var all: [Value] { values.withLock { $0 } }
}
