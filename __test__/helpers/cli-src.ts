// The CLI from source (tsx), for tests that spawn kana-native processes without a build.
import { main } from '../../src/cli/main'

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
