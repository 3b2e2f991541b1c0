// PatchdSystem: a dedicated OS thread for blocking C work that must stay off Swift's cooperative pool.

import CPatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// A joinable pthread running one closure. Used for each SSH connection (libssh blocks)
/// and for the accept loop.
package final class OSThread: Sendable {
    private let handle: pthread_t

    private final class Body {
        let run: @Sendable () -> Void
        let name: String
        init(_ name: String, _ run: @escaping @Sendable () -> Void) { self.name = name; self.run = run }
    }

    /// Starts `body` on a new thread named `name` (first 15 bytes, as Linux keeps them).
    /// - Throws: `SystemError` from pthread_create (EAGAIN when the process or the user is at its
    ///   thread limit): the caller refuses that one piece of work; the daemon keeps serving.
    package init(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let box = Unmanaged.passRetained(Body(name, body)).toOpaque()
        var thread = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        // 1 MiB is plenty for a connection loop and keeps 200 connections cheap.
        pthread_attr_setstacksize(&attr, 1 << 20)
        let rc = pthread_create(
            &thread, &attr,
            { raw in
                let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
                patchd_set_thread_name(String(body.name.prefix(15)))
                body.run()
                return nil
            }, box)
        pthread_attr_destroy(&attr)
        guard rc == 0 else {
            // The thread never started, so the body it would have released is still ours.
            Unmanaged<Body>.fromOpaque(box).release()
            throw SystemError("pthread_create", errno: rc, context: name)
        }
        handle = thread
    }

    package func join() { pthread_join(handle, nil) }

    /// For threads nobody joins (connection threads): their resources go when they end.
    package func detach() { pthread_detach(handle) }
}

/// A value one thread writes before it ends and another reads after `join()`: the join
/// orders the two accesses, which is why this needs no lock.
package final class JoinedResult<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    package init(_ initial: Value) { value = initial }
    /// Only from the thread being joined, before it ends.
    package func set(_ newValue: Value) { value = newValue }
    /// Only after `join()` on that thread.
    package func get() -> Value { value }
}
