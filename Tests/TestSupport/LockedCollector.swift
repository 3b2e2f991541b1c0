// TestSupport: values collected from several threads (concurrentPerform iterations, callbacks), behind one lock.
import Synchronization

/// Appends and slot writes from any thread; reads see everything written before them.
public final class LockedCollector<Value: Sendable>: Sendable {
    private let values: Mutex<[Value]>

    /// Empty, for `append`.
    public init() { values = Mutex([]) }
    /// `count` slots holding `initial`, for `set`.
    public init(count: Int, initial: Value) { values = Mutex(Array(repeating: initial, count: count)) }

    public func append(_ value: Value) { values.withLock { $0.append(value) } }
    public func set(_ index: Int, _ value: Value) { values.withLock { $0[index] = value } }
    public var all: [Value] { values.withLock { $0 } }
}
