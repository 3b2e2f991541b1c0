// PatchdFuzz: without -DFUZZING, the corpus regression runner:
//   patchd-fuzz replay TARGET|all DIR...
// Runs every file under each DIR through TARGET (for `all`, DIR/<target>/ through each target)
// and exits 0; a crash is the failure. `make test` runs it on fuzz/corpus.

#if !FUZZING
import Foundation

@main
struct PatchdFuzzReplay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard args.count >= 3, args[0] == "replay", args[1] == "all" || FuzzTargets.names.contains(args[1]) else {
            fail("usage: patchd-fuzz replay TARGET|all DIR...   (targets: \(FuzzTargets.names.joined(separator: ", ")))")
        }
        var total = 0
        for dir in args[2...] {
            if args[1] == "all" {
                for name in FuzzTargets.names {
                    total += replay(name, directory: (dir as NSString).appendingPathComponent(name))
                }
            } else {
                total += replay(args[1], directory: dir)
            }
        }
        print("patchd-fuzz: replayed \(total) inputs")
    }

    static func replay(_ target: String, directory: String) -> Int {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            fail("patchd-fuzz: no such directory: \(directory)")
        }
        guard let walker = fm.enumerator(atPath: directory) else { fail("patchd-fuzz: cannot list \(directory)") }
        var paths: [String] = []
        while let entry = walker.nextObject() as? String {
            let path = (directory as NSString).appendingPathComponent(entry)
            if fm.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue { paths.append(path) }
        }
        for path in paths.sorted() {
            guard let data = fm.contents(atPath: path) else { fail("patchd-fuzz: cannot read \(path)") }
            _ = FuzzTargets.run(target, Array(data))
        }
        return paths.count
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(2)
    }
}
#endif
