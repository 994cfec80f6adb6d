export declare function wasmBytes(): number;
