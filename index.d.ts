// The typed API of kana-native. The declarations are generated from the TypeScript sources in
// src/ (compiled to dist/); this file gathers them behind the package's entry point.
export * from './dist/index'
export { native } from './dist/engine/native'
export type { NativeBinding } from './dist/engine/native'
